package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// runReady waits until the server answers /readyz with "ok" and prints how
// long that took: {"ready_ms": N}. --exclude NAME leaves a check out (as
// /readyz?exclude=NAME does).
func runReady(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	server := serverFlag(fs)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	var exclude []string
	fs.Func("exclude", "a readyz check to leave out (repeatable)", func(s string) error {
		exclude = append(exclude, s)
		return nil
	})
	if err := parse(fs, args, server); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(config(*server))
	if err != nil {
		return err
	}
	begin := time.Now()
	var last error
	for time.Since(begin) < *timeout {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req := cs.Discovery().RESTClient().Get().AbsPath("/readyz")
		for _, e := range exclude {
			req = req.Param("exclude", e)
		}
		body, err := req.DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			emit(map[string]int64{"ready_ms": time.Since(begin).Milliseconds()})
			return nil
		}
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return fmt.Errorf("/readyz: %w", err) // waiting will not help
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("/readyz: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", *timeout, last)
}
