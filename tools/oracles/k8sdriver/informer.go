package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// line is one JSON line of the informer's log.
type line struct {
	// ADDED, UPDATED, DELETED (handler events), LIST (a list answered),
	// WATCH (a watch started), WATCH_ERROR (a watch refused or ended by an
	// error event, or ListAndWatch dropped, with the reason), UNREACHABLE (the server refused a connection; logged once per
	// outage), SYNCED (both informers synced), STORE (answer to "dump").
	Type string `json:"type"`
	// ConfigMap or Secret.
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
	// The object's resourceVersion; for LIST the list's, for WATCH the one
	// the watch starts from.
	RV    string `json:"rv,omitempty"`
	Items int    `json:"items,omitempty"`
	Error string `json:"error,omitempty"`
	// STORE: name -> resourceVersion of every object the informer holds.
	Store map[string]string `json:"store,omitempty"`
	// Milliseconds since the informer started.
	MS int64 `json:"ms"`
}

var (
	logMu sync.Mutex
	start = time.Now()
)

func logLine(l line) {
	l.MS = time.Since(start).Milliseconds()
	logMu.Lock()
	defer logMu.Unlock()
	emit(l)
}

// patient retries a call the server refuses (it is down, or coming back on
// the same address) every 200 ms, so the reflector's own backoff, which grows
// to 30 s, does not decide how soon the informer notices the new server. Any
// answer the server gives, errors included, goes to the reflector as is.
type patient struct {
	kind    string
	down    bool
	downMu  sync.Mutex
	timeout time.Duration
}

func (p *patient) retry(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(p.timeout)
	for {
		err := call()
		if err == nil || !unreachable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			p.downMu.Lock()
			p.down = false
			p.downMu.Unlock()
			return err
		}
		p.downMu.Lock()
		if !p.down {
			p.down = true
			logLine(line{Type: "UNREACHABLE", Kind: p.kind, Error: err.Error()})
		}
		p.downMu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

func unreachable(err error) bool {
	return utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || errors.Is(err, context.DeadlineExceeded) ||
		utilnet.IsProbableEOF(err)
}

func listWatch(kind string, list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) *cache.ListWatch {
	p := &patient{kind: kind, timeout: 10 * time.Minute}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			var obj runtime.Object
			err := p.retry(ctx, func() error {
				var err error
				obj, err = list(ctx, opts)
				return err
			})
			if err != nil {
				return nil, err
			}
			l := line{Type: "LIST", Kind: kind}
			if lm, err := meta.ListAccessor(obj); err == nil {
				l.RV = lm.GetResourceVersion()
			}
			if items, err := meta.ExtractList(obj); err == nil {
				l.Items = len(items)
			}
			logLine(l)
			return obj, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			var w watch.Interface
			err := p.retry(ctx, func() error {
				var err error
				w, err = watchFn(ctx, opts)
				return err
			})
			if err != nil {
				logLine(line{Type: "WATCH_ERROR", Kind: kind, RV: opts.ResourceVersion, Error: err.Error()})
				return nil, err
			}
			logLine(line{Type: "WATCH", Kind: kind, RV: opts.ResourceVersion})
			// A watch the server ends with an error event ("too old resource
			// version" after a compaction) makes the reflector re-list without
			// calling the watch error handler: log the event on its way.
			return watch.Filter(w, func(ev watch.Event) (watch.Event, bool) {
				if ev.Type == watch.Error {
					msg := fmt.Sprintf("%v", ev.Object)
					if st, ok := ev.Object.(*metav1.Status); ok {
						msg = fmt.Sprintf("%s (%s, %d)", st.Message, st.Reason, st.Code)
					}
					logLine(line{Type: "WATCH_ERROR", Kind: kind, RV: opts.ResourceVersion, Error: msg})
				}
				return ev, true
			}), nil
		},
	}
}

func runInformer(args []string) error {
	fs := flag.NewFlagSet("informer", flag.ContinueOnError)
	server := serverFlag(fs)
	ns := fs.String("namespace", "", "namespace to watch")
	if err := parse(fs, args, server); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(config(*server))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cms := cs.CoreV1().ConfigMaps(*ns)
	secrets := cs.CoreV1().Secrets(*ns)
	informers := map[string]cache.SharedIndexInformer{
		"ConfigMap": cache.NewSharedIndexInformer(listWatch("ConfigMap",
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return cms.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return cms.Watch(ctx, o) }),
			&corev1.ConfigMap{}, 0, cache.Indexers{}),
		"Secret": cache.NewSharedIndexInformer(listWatch("Secret",
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return secrets.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return secrets.Watch(ctx, o) }),
			&corev1.Secret{}, 0, cache.Indexers{}),
	}
	kinds := []string{"ConfigMap", "Secret"}
	for _, kind := range kinds {
		inf := informers[kind]
		objLine := func(typ string, obj any) line {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			l := line{Type: typ, Kind: kind}
			if m, err := meta.Accessor(obj); err == nil {
				l.Name, l.RV = m.GetName(), m.GetResourceVersion()
			}
			return l
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { logLine(objLine("ADDED", obj)) },
			UpdateFunc: func(_, obj any) { logLine(objLine("UPDATED", obj)) },
			DeleteFunc: func(obj any) { logLine(objLine("DELETED", obj)) },
		}); err != nil {
			return err
		}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			logLine(line{Type: "WATCH_ERROR", Kind: kind, Error: err.Error()})
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}); err != nil {
			return err
		}
		go inf.RunWithContext(ctx)
	}
	for _, kind := range kinds {
		if !cache.WaitForCacheSync(ctx.Done(), informers[kind].HasSynced) {
			return errors.New("informer did not sync")
		}
	}
	logLine(line{Type: "SYNCED"})

	// "dump" on stdin: the store of each informer; end of stdin: exit.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "dump" {
			continue
		}
		for _, kind := range kinds {
			store := map[string]string{}
			keys := informers[kind].GetStore().ListKeys()
			sort.Strings(keys)
			for _, k := range keys {
				obj, ok, err := informers[kind].GetStore().GetByKey(k)
				if err != nil || !ok {
					continue
				}
				if m, err := meta.Accessor(obj); err == nil {
					store[m.GetName()] = m.GetResourceVersion()
				}
			}
			logLine(line{Type: "STORE", Kind: kind, Store: store, Items: len(store)})
		}
	}
	return nil
}
