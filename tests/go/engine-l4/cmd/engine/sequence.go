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

func sequenceRound(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time) {
	ctx := context.Background()
	ss := e.openSession()
	pfx := fmt.Sprintf("r%d-", round)
	for pass := 0; pass < 2 && !stop.Load(); pass++ {
		for k := 0; k < 12; k++ {
			val := fmt.Sprintf("%ssrc%d", pfx, k)
			build := request(frame("build", nil, 0, arg("source", val)), ss.id)
			_, _ = e.call(ctx, ss, build, true, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
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
		}
	}
	e.closeSession(ss)
}
