// Command wide is a big, busy Go program for attach benchmarks: it links a broad part of
// the standard library (net/http over crypto/tls, encoding/json and encoding/xml,
// compress/gzip, text/template and html/template, regexp, archive/zip, math/big...) so
// that it has many thousands of functions to put probes on, and it keeps running real
// work through them until it is killed.
//
// The work: an HTTPS server on 127.0.0.1 with a certificate made at start-up, and
// -clients client goroutines that each POST a JSON document to it, then sleep -interval,
// in a loop. The handler decodes the JSON, renders it through a template, compresses the
// result and answers with XML; the client decodes the answer. Every -rounds-th request
// also builds a zip archive and does some big-number arithmetic.
//
// Flags:
//
//	-clients N      client goroutines (default 2)
//	-interval D     pause between one client's requests (default 2ms)
//	-duration D     stop after this long (default 0: run until killed)
//
// Stdout gets "ready <pid>" once the first request has completed, and at the end (only
// with -duration) one JSON line {"requests":R,"errors":E,"pid":P}.
package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"
)

type order struct {
	ID       int               `json:"id"`
	Customer string            `json:"customer"`
	Items    []item            `json:"items"`
	Tags     map[string]string `json:"tags"`
	Placed   time.Time         `json:"placed"`
}

type item struct {
	SKU   string  `json:"sku"`
	Count int     `json:"count"`
	Price float64 `json:"price"`
}

type receipt struct {
	XMLName xml.Name `xml:"receipt"`
	ID      int      `xml:"id,attr"`
	Total   string   `xml:"total"`
	Digest  string   `xml:"digest"`
	Body    string   `xml:"body"`
}

var (
	textTmpl = template.Must(template.New("order").Parse(
		`order {{.ID}} for {{.Customer}}:{{range .Items}} {{.Count}}x{{.SKU}}@{{printf "%.2f" .Price}}{{end}}`))
	htmlTmpl = htmltemplate.Must(htmltemplate.New("tags").Parse(
		`<ul>{{range $k, $v := .Tags}}<li>{{$k}}={{$v}}</li>{{end}}</ul>`))
	skuPattern = regexp.MustCompile(`^[A-Z]{3}-\d{4}$`)
	requests   atomic.Int64
	failures   atomic.Int64
)

func main() {
	clients := flag.Int("clients", 2, "client goroutines")
	interval := flag.Duration("interval", 2*time.Millisecond, "pause between requests")
	duration := flag.Duration("duration", 0, "stop after this long (0: never)")
	flag.Parse()

	cert, pool, err := selfSigned()
	if err != nil {
		fail(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/order", handleOrder)
	go func() { _ = http.Serve(ln, mux) }()

	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   10 * time.Second,
	}
	url := "https://" + ln.Addr().String() + "/order"
	if err := roundTrip(client, url, 0); err != nil {
		fail(err)
	}
	fmt.Printf("ready %d\n", os.Getpid())

	var stop atomic.Bool
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for n := 1; !stop.Load(); n++ {
				if err := roundTrip(client, url, c*1_000_000+n); err != nil {
					failures.Add(1)
				}
				time.Sleep(*interval)
			}
		}(c)
	}
	if *duration <= 0 {
		select {}
	}
	time.Sleep(*duration)
	stop.Store(true)
	wg.Wait()
	out, _ := json.Marshal(map[string]any{
		"requests": requests.Load(), "errors": failures.Load(), "pid": os.Getpid(),
	})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wide:", err)
	os.Exit(1)
}

// selfSigned makes a P-256 certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wide"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(parsed)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}, pool, nil
}

func roundTrip(client *http.Client, url string, n int) error {
	o := order{
		ID:       n,
		Customer: fmt.Sprintf("customer-%d", n%97),
		Items: []item{
			{SKU: fmt.Sprintf("ABC-%04d", n%10000), Count: 1 + n%5, Price: 9.99},
			{SKU: "XYZ-0042", Count: 2, Price: 0.5},
		},
		Tags:   map[string]string{"region": "eu", "tier": fmt.Sprint(n % 3)},
		Placed: time.Unix(1_700_000_000+int64(n), 0).UTC(),
	}
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	var r receipt
	if err := xml.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	zipped, err := base64.StdEncoding.DecodeString(r.Body)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return err
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(text), fmt.Sprintf("order %d ", n)) {
		return fmt.Errorf("unexpected receipt body %q", text)
	}
	requests.Add(1)
	return nil
}

func handleOrder(w http.ResponseWriter, req *http.Request) {
	var o order
	if err := json.NewDecoder(req.Body).Decode(&o); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	total := 0.0
	for _, it := range o.Items {
		if !skuPattern.MatchString(it.SKU) {
			http.Error(w, "bad sku "+it.SKU, http.StatusBadRequest)
			return
		}
		total += float64(it.Count) * it.Price
	}
	var text bytes.Buffer
	if err := textTmpl.Execute(&text, o); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var html bytes.Buffer
	if err := htmlTmpl.Execute(&html, o); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	text.WriteString("\n")
	text.Write(html.Bytes())
	if o.ID%50 == 0 {
		text.WriteString(fmt.Sprintf("\narchive %d bytes, checksum %s", archive(o), bigSum(o.ID)))
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	if _, err := zw.Write(text.Bytes()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := zw.Close(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(text.Bytes())
	w.Header().Set("Content-Type", "application/xml")
	_ = xml.NewEncoder(w).Encode(receipt{
		ID:     o.ID,
		Total:  fmt.Sprintf("%.2f", total),
		Digest: fmt.Sprintf("%x", sum[:8]),
		Body:   base64.StdEncoding.EncodeToString(zipped.Bytes()),
	})
}

// archive writes the order as CSV into a zip file in memory and returns its size.
func archive(o order) int {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.Create(fmt.Sprintf("order-%d.csv", o.ID))
	if err != nil {
		return -1
	}
	cw := csv.NewWriter(f)
	keys := make([]string, 0, len(o.Tags))
	for k := range o.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, it := range o.Items {
		_ = cw.Write([]string{it.SKU, fmt.Sprint(it.Count), fmt.Sprint(it.Price), strings.Join(keys, ";")})
	}
	cw.Flush()
	if err := zw.Close(); err != nil {
		return -1
	}
	return buf.Len()
}

// bigSum is 2^id mod a large prime, in hex.
func bigSum(id int) string {
	p, _ := new(big.Int).SetString("170141183460469231731687303715884105727", 10)
	return new(big.Int).Exp(big.NewInt(2), big.NewInt(int64(id)), p).Text(16)
}
