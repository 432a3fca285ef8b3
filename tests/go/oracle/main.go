// Command oracle dumps ground truth about a Go ELF binary using only the Go standard
// library (debug/elf, debug/gosym, debug/buildinfo, debug/dwarf). Build it with the
// newest toolchain so that it reads every binary format.
//
// Usage: oracle [-funcs=false] [-match REGEXP] BINARY
//
// It prints one JSON object on stdout:
//
//	{"binary":"/path",
//	 "go_version":"go1.26.6",            // debug/buildinfo (.go.buildinfo)
//	 "path":"funcs",                     // buildinfo Path (main package path)
//	 "main_path":"funcs",                // buildinfo Main.Path (main module path)
//	 "main_version":"(devel)",
//	 "settings":{"-ldflags":"-s -w","CGO_ENABLED":"0","GOARCH":"amd64",...},
//	 "stripped":true|false,              // true when the ELF has no .symtab
//	 "has_dwarf":true|false,
//	 "pclntab_addr":<int>,               // address of .gopclntab (or runtime.pclntab)
//	 "text_start":<int>,                 // runtime.text, used as gosym text start
//	 "text_start_source":"pclntab header"|".text section",
//	 "functions":[{"name":"main.add9","entry":<int>,"end":<int>,
//	               "file":"/abs/path/main.go","line":<int>}, ...],
//	                                      // every func of the pclntab, sorted by entry
//	                                      // (names can repeat: ABI0/ABIInternal wrappers);
//	                                      // file:line is the line table at the entry pc
//	 "goid_offset":<int>|null,           // DWARF: offset of member goid in runtime.g
//	 "g_offsets":{"stack":0,"goid":152,...}|null,  // every member of runtime.g (DWARF)
//	 "m_offsets":{"g0":0,"curg":...}|null,         // every member of runtime.m (DWARF)
//	 "gobuf_offsets":{"sp":0,"pc":8,...}|null,     // every member of runtime.gobuf (DWARF)
//	 "wait_reasons":{"waitReasonChanReceive":14,...}|null}
//	                                      // DWARF constants runtime.waitReason*, if emitted
//
// Addresses are virtual addresses (decimal JSON numbers). All "null" fields are null
// exactly when the binary has no DWARF (or the item is missing from it).
package main

import (
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

type function struct {
	Name  string `json:"name"`
	Entry uint64 `json:"entry"`
	End   uint64 `json:"end"`
	File  string `json:"file"`
	Line  int    `json:"line"`
}

type report struct {
	Binary          string            `json:"binary"`
	GoVersion       string            `json:"go_version"`
	Path            string            `json:"path"`
	MainPath        string            `json:"main_path"`
	MainVersion     string            `json:"main_version"`
	Settings        map[string]string `json:"settings"`
	Stripped        bool              `json:"stripped"`
	HasDWARF        bool              `json:"has_dwarf"`
	PclntabAddr     uint64            `json:"pclntab_addr"`
	TextStart       uint64            `json:"text_start"`
	TextStartSource string            `json:"text_start_source"`
	Functions       []function        `json:"functions"`
	GoidOffset      *int64            `json:"goid_offset"`
	GOffsets        map[string]int64  `json:"g_offsets"`
	MOffsets        map[string]int64  `json:"m_offsets"`
	GobufOffsets    map[string]int64  `json:"gobuf_offsets"`
	WaitReasons     map[string]int64  `json:"wait_reasons"`
}

func main() {
	withFuncs := flag.Bool("funcs", true, "include the function list")
	match := flag.String("match", "", "only list functions whose name matches this regexp")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: oracle [-funcs=false] [-match REGEXP] BINARY")
		os.Exit(2)
	}
	var re *regexp.Regexp
	if *match != "" {
		var err error
		if re, err = regexp.Compile(*match); err != nil {
			fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
			os.Exit(2)
		}
	}
	r, err := inspect(flag.Arg(0), *withFuncs, re)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oracle: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
		os.Exit(1)
	}
}

func inspect(path string, withFuncs bool, re *regexp.Regexp) (*report, error) {
	r := &report{Binary: path, Settings: map[string]string{}, Functions: []function{}}

	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("buildinfo: %w", err)
	}
	r.GoVersion = bi.GoVersion
	r.Path = bi.Path
	r.MainPath = bi.Main.Path
	r.MainVersion = bi.Main.Version
	for _, s := range bi.Settings {
		r.Settings[s.Key] = s.Value
	}

	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r.Stripped = f.Section(".symtab") == nil

	tab, err := lineTable(f, r)
	if err != nil {
		return nil, fmt.Errorf("pclntab: %w", err)
	}
	if withFuncs {
		for i := range tab.Funcs {
			fn := &tab.Funcs[i]
			if re != nil && !re.MatchString(fn.Name) {
				continue
			}
			file, line, _ := tab.PCToLine(fn.Entry)
			r.Functions = append(r.Functions, function{Name: fn.Name, Entry: fn.Entry, End: fn.End, File: file, Line: line})
		}
		sort.Slice(r.Functions, func(i, j int) bool { return r.Functions[i].Entry < r.Functions[j].Entry })
	}

	d, err := f.DWARF()
	if err == nil && d != nil {
		r.HasDWARF = true
		if err := fromDWARF(d, r); err != nil {
			return nil, fmt.Errorf("dwarf: %w", err)
		}
	}
	return r, nil
}

// lineTable finds the pclntab (section .gopclntab, or the runtime.pclntab symbol) and the
// text start (from the Go 1.18+ pclntab header, else the .text section) and builds the
// gosym table.
func lineTable(f *elf.File, r *report) (*gosym.Table, error) {
	var data []byte
	if s := f.Section(".gopclntab"); s != nil {
		b, err := s.Data()
		if err != nil {
			return nil, err
		}
		data = b
		r.PclntabAddr = s.Addr
	} else {
		// Some linkers (e.g. external linking on some platforms) put it in .data.rel.ro;
		// find it through the symbol table.
		syms, err := f.Symbols()
		if err != nil {
			return nil, errors.New("no .gopclntab section and no symbol table")
		}
		var start, end uint64
		for _, s := range syms {
			switch s.Name {
			case "runtime.pclntab":
				start = s.Value
			case "runtime.epclntab":
				end = s.Value
			}
		}
		if start == 0 || end <= start {
			return nil, errors.New("no .gopclntab section and no runtime.pclntab symbol")
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Vaddr <= start && end <= p.Vaddr+p.Filesz {
				b := make([]byte, end-start)
				if _, err := p.ReadAt(b, int64(start-p.Vaddr)); err != nil {
					return nil, err
				}
				data = b
			}
		}
		if data == nil {
			return nil, errors.New("runtime.pclntab not in a loadable segment")
		}
		r.PclntabAddr = start
	}

	textStart := uint64(0)
	if len(data) >= 16 {
		magic := binary.LittleEndian.Uint32(data[0:4])
		ptrSize := uint64(data[7])
		// Go 1.18 (0xfffffff0) and 1.20+ (0xfffffff1): header word 2 is runtime.text.
		if (magic == 0xfffffff0 || magic == 0xfffffff1) && (ptrSize == 4 || ptrSize == 8) && uint64(len(data)) >= 8+3*ptrSize {
			off := 8 + 2*ptrSize
			if ptrSize == 8 {
				textStart = binary.LittleEndian.Uint64(data[off:])
			} else {
				textStart = uint64(binary.LittleEndian.Uint32(data[off:]))
			}
			if textStart != 0 {
				r.TextStartSource = "pclntab header"
			}
		}
	}
	if textStart == 0 {
		if s := f.Section(".text"); s != nil {
			textStart = s.Addr
			r.TextStartSource = ".text section"
		} else {
			return nil, errors.New("cannot determine text start")
		}
	}
	r.TextStart = textStart

	var symtab []byte
	if s := f.Section(".gosymtab"); s != nil {
		symtab, _ = s.Data()
	}
	return gosym.NewTable(symtab, gosym.NewLineTable(data, textStart))
}

func fromDWARF(d *dwarf.Data, r *report) error {
	structs := map[string]*map[string]int64{
		"runtime.g":     &r.GOffsets,
		"runtime.m":     &r.MOffsets,
		"runtime.gobuf": &r.GobufOffsets,
	}
	rd := d.Reader()
	for {
		e, err := rd.Next()
		if err != nil {
			return err
		}
		if e == nil {
			break
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			continue // descend into the unit
		case dwarf.TagStructType:
			name, _ := e.Val(dwarf.AttrName).(string)
			dst, ok := structs[name]
			if !ok || *dst != nil || !e.Children {
				rd.SkipChildren()
				continue
			}
			m := map[string]int64{}
			for {
				c, err := rd.Next()
				if err != nil {
					return err
				}
				if c == nil || c.Tag == 0 {
					break
				}
				if c.Tag == dwarf.TagMember {
					mn, _ := c.Val(dwarf.AttrName).(string)
					if off, ok := c.Val(dwarf.AttrDataMemberLoc).(int64); ok && mn != "" {
						m[mn] = off
					}
				}
				if c.Children {
					rd.SkipChildren()
				}
			}
			*dst = m
		case dwarf.TagConstant:
			name, _ := e.Val(dwarf.AttrName).(string)
			if strings.HasPrefix(name, "runtime.waitReason") {
				if v, ok := e.Val(dwarf.AttrConstValue).(int64); ok {
					if r.WaitReasons == nil {
						r.WaitReasons = map[string]int64{}
					}
					r.WaitReasons[strings.TrimPrefix(name, "runtime.")] = v
				}
			}
			if e.Children {
				rd.SkipChildren()
			}
		default:
			if e.Children {
				rd.SkipChildren()
			}
		}
	}
	if r.GOffsets != nil {
		if v, ok := r.GOffsets["goid"]; ok {
			r.GoidOffset = &v
		}
	}
	return nil
}
