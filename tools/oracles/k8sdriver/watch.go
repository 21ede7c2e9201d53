package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// runWatch starts one watch of RES from --rv and prints what the server does
// with it: {"error": "..."} when it refuses the watch, else the first event
// {"event": TYPE, "object": {...}}, or {"event": "NONE"} after --timeout.
func runWatch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	server := serverFlag(fs)
	rv := fs.String("rv", "", "resourceVersion to watch from")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for a first event")
	if err := parse(fs, args, server); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("watch: want RES")
	}
	r, err := parseResource(fs.Arg(0))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(config(*server))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+30*time.Second)
	defer cancel()
	w, err := dyn.Resource(r.gvr).Namespace(r.namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: *rv})
	if err != nil {
		emit(map[string]string{"error": err.Error()})
		return nil
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			emit(map[string]string{"event": "CLOSED"})
			return nil
		}
		emit(map[string]any{"event": string(ev.Type), "object": ev.Object})
	case <-time.After(*timeout):
		emit(map[string]string{"event": "NONE"})
	}
	return nil
}
