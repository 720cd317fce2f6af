//go:build cpuprofile

package main

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// The CPU profile behind default.pgo (make pgo): built with -tags
// cpuprofile and given RELAY_CPU_PROFILE, the function profiles itself
// into that file from init until SIGTERM, then exits. Never in a
// deployed build.
func init() {
	path := os.Getenv("RELAY_CPU_PROFILE")
	if path == "" {
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Error("cannot profile", "error", err.Error())
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("cannot write the CPU profile", "error", err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}()
}
