package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
)

// runReady waits until the server answers /readyz with "ok" and prints how
// long that took: {"ready_ms": N}.
func runReady(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	server := serverFlag(fs)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
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
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			emit(map[string]int64{"ready_ms": time.Since(begin).Milliseconds()})
			return nil
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
