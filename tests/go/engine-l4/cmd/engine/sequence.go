package main

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dagger/dagger/dagql"
)

// The sequence scenario: one session making its calls one after another, twice (the
// second pass hits), so two runs with the same flags ask the cache the same things in
// the same order. `-plant-arg` changes one nested call's argument, the difference
// `tracer diff` must find; `-plant-site` is the call it watches (recorded in both runs).
var (
	plantSite = flag.Int("plant-site", 3, "sequence: the build whose first dep call is watched (a plant_site truth record)")
	plantArg  = flag.Bool("plant-arg", false, "sequence: change the watched dep call's argument")
)

func init() {
	scenarios["sequence"] = scenario{name: "sequence", minSessions: 1, round: sequenceRound}
}

type plantSiteRec struct {
	Kind         string  `json:"kind"` // "plant_site"
	Field        string  `json:"field"`
	Planted      bool    `json:"planted"`
	Digest       *string `json:"digest"`
	ParentDigest *string `json:"parent_digest"`
}

// explainPlantRec says which part of a planted miss's identity differs from the
// nearest earlier call of its field (what `tracer cache --explain` must report).
type explainPlantRec struct {
	Kind   string  `json:"kind"` // "explain_plant"
	Field  string  `json:"field"`
	Digest *string `json:"digest"`
	// "arg <name>", "input 0", "do_not_cache"
	Part string `json:"part"`
	// The sensitive value the tracer must never show, if any.
	Secret string `json:"secret,omitempty"`
}

func sequenceRound(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time) {
	ctx := context.Background()
	ss := e.openSession()
	pfx := fmt.Sprintf("r%d-", round)
	builds := map[int]*dagql.CallRequest{}
	results := map[int]dagql.AnyResult{}
	for pass := 0; pass < 2 && !stop.Load(); pass++ {
		for k := 0; k < 12; k++ {
			val := fmt.Sprintf("%ssrc%d", pfx, k)
			build := request(frame("build", nil, 0, arg("source", val)), ss.id)
			if pass == 0 {
				builds[k] = build
			}
			res, _ := e.call(ctx, ss, build, true, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
				if k%3 == 0 {
					for j := 0; j < 2; j++ {
						of := fmt.Sprintf("%s/%d", val, j)
						watched := k == *plantSite && j == 0
						if watched && *plantArg {
							of += "-planted"
						}
						dep := request(frame("dep", nil, 0, arg("of", of)), ss.id)
						if _, err := e.call(ctx, ss, dep, true, e.resolverFn(value("dep-"+of))); err != nil {
							return nil, err
						}
						if watched && e.truth.enabled() {
							rec := plantSiteRec{Kind: "plant_site", Field: "dep", Planted: *plantArg}
							if d, ok := dep.ResultCall.HeldRecipeDigest(); ok {
								rec.Digest = strp(d)
							}
							if d, ok := build.ResultCall.HeldRecipeDigest(); ok {
								rec.ParentDigest = strp(d)
							}
							e.truth.write(rec)
						}
					}
				}
				return dagql.NewResult(dagql.String("built-" + val)), nil
			}))
			if pass == 0 {
				results[k] = res
			}
		}
	}
	if !stop.Load() {
		e.explainPlants(ctx, ss, pfx, builds, results)
	}
	e.closeSession(ss)
}

// explainPlants makes misses whose cause is known: a changed argument, the same call
// on another receiver, an uncached call, and a sensitive argument.
func (e *env) explainPlants(ctx context.Context, ss *sessState, pfx string, builds map[int]*dagql.CallRequest, results map[int]dagql.AnyResult) {
	plant := func(req *dagql.CallRequest, part, secret string) {
		_, _ = e.call(ctx, ss, req, true, e.resolverFn(value("planted")))
		if !e.truth.enabled() {
			return
		}
		rec := explainPlantRec{Kind: "explain_plant", Field: req.Field, Part: part, Secret: secret}
		if d, ok := req.ResultCall.HeldRecipeDigest(); ok {
			rec.Digest = strp(d)
		}
		e.truth.write(rec)
	}
	// The same field and argument name as every build, another value.
	plant(request(frame("build", nil, 0, arg("source", pfx+"src5-changed")), ss.id), "arg source", "")
	// sub(n: "1") on build 1, then the same on build 2: only the receiver differs.
	sub := func(k int) *dagql.CallRequest {
		return request(frame("sub", builds[k].ResultCall, dagql.ResultID(results[k]), arg("n", "1")), ss.id)
	}
	_, _ = e.call(ctx, ss, sub(1), true, e.resolverFn(value("sub-1")))
	plant(sub(2), "input 0", "")
	// The same call on a receiver the cache never saw: its input is unknown to the
	// e-graph (the engine's CacheDecision says which, where it is armed).
	never := frame("build", nil, 0, arg("source", pfx+"never-built"))
	plant(request(frame("sub", never, 0, arg("n", "1")), ss.id), "input 0", "")
	// Not cached at all.
	nc := request(frame("build", nil, 0, arg("source", pfx+"src7")), ss.id)
	nc.DoNotCache = true
	plant(nc, "do_not_cache", "")
	// A sensitive argument: its value is hashed as "***" and must never be shown.
	secretArg := arg("token", "s3cr3t-"+pfx)
	secretArg.IsSensitive = true
	plant(request(frame("login", nil, 0, arg("user", "ann"), secretArg), ss.id), "new field", secretArg.Value.StringValue)
}
