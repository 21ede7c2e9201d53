// Command walcount reads a WAL directory with etcd 3.7.3's own reader
// (wal.OpenForRead + ReadAll, as a starting etcd does) and prints what it
// read as JSON, for etcdsnap's WAL tests to compare with.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.uber.org/zap"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: walcount WAL_DIR")
		os.Exit(2)
	}
	w, err := wal.OpenForRead(zap.NewNop(), os.Args[1], &walpb.Snapshot{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "walcount:", err)
		os.Exit(1)
	}
	defer w.Close()
	_, st, ents, err := w.ReadAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "walcount:", err)
		os.Exit(1)
	}
	out := map[string]uint64{"entries": uint64(len(ents)), "commit": st.GetCommit(), "term": st.GetTerm()}
	if len(ents) > 0 {
		out["first_index"] = ents[0].GetIndex()
		out["last_index"] = ents[len(ents)-1].GetIndex()
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}
