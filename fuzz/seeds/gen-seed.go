// gen-seed writes a small but varied bbolt file for the fuzz targets.
//
// `boltoracle gen` cannot make a file under 200 KB (its fixed "nested"
// buckets alone take ~2 MB at 4 KiB pages), so this is a cut-down version
// of it: plain keys, an empty value, a nested bucket three levels deep,
// inline and paged sub-buckets, an overflow value, a bucket sequence and a
// non-empty freelist (a delete transaction). The file is truncated to
// pgid x pageSize. Built like the oracle (GOPATH mode, Debian's bbolt 1.3.6):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$PWD/.oracles/go-cache GOFLAGS= \
//	  go run fuzz/seeds/gen-seed.go OUT PAGESIZE KEYS
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "gen-seed: "+f+"\n", a...)
	os.Exit(2)
}

func rb(r *rand.Rand, n int) []byte { b := make([]byte, n); r.Read(b); return b }

func main() {
	if len(os.Args) != 4 {
		die("usage: gen-seed OUT PAGESIZE KEYS")
	}
	out := os.Args[1]
	ps, err := strconv.Atoi(os.Args[2])
	if err != nil {
		die("bad PAGESIZE")
	}
	nkeys, err := strconv.Atoi(os.Args[3])
	if err != nil {
		die("bad KEYS")
	}
	_ = os.Remove(out)
	db, err := bolt.Open(out, 0600, &bolt.Options{PageSize: ps})
	if err != nil {
		die("open: %v", err)
	}
	r := rand.New(rand.NewSource(1))
	var keys [][]byte
	must := func(err error) {
		if err != nil {
			die("%v", err)
		}
	}
	must(db.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{"alpha", "big", "empty", "nested"} {
			if _, err := tx.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		a := tx.Bucket([]byte("alpha"))
		for _, kv := range [][2]string{{"a", "1"}, {"ab", ""}, {"\x00", "zero"}, {"\xff\xff", "\xff"}} {
			if err := a.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		if err := a.SetSequence(42); err != nil {
			return err
		}
		b := tx.Bucket([]byte("big"))
		for i := 0; i < nkeys; i++ {
			k := make([]byte, 8)
			binary.BigEndian.PutUint64(k, uint64(r.Int63()))
			k = append(k, rb(r, r.Intn(16))...)
			if err := b.Put(k, rb(r, r.Intn(120))); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		if err := b.Put([]byte("overflow"), rb(r, 2*ps+17)); err != nil {
			return err
		}
		n := tx.Bucket([]byte("nested"))
		for i := 0; i < 2; i++ {
			l1, err := n.CreateBucket([]byte(fmt.Sprintf("l1-%d", i)))
			if err != nil {
				return err
			}
			if err := l1.Put([]byte("x"), []byte("level1")); err != nil {
				return err
			}
			l2, err := l1.CreateBucket([]byte("l2"))
			if err != nil {
				return err
			}
			// i == 0: a small inline bucket; i == 1: a paged one.
			cnt := 3
			if i == 1 {
				cnt = ps / 40
			}
			for m := 0; m < cnt; m++ {
				if err := l2.Put([]byte(fmt.Sprintf("k%04d", m)), rb(r, r.Intn(20))); err != nil {
					return err
				}
			}
			if _, err := l2.CreateBucket([]byte("l3-empty")); err != nil {
				return err
			}
		}
		return n.SetSequence(7)
	}))
	// Free some pages so the freelist is not empty.
	must(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("big"))
		for i, k := range keys {
			if i%3 == 1 {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	var hwm int64
	must(db.View(func(tx *bolt.Tx) error { hwm = int64(tx.Size()); return nil }))
	must(db.Close())
	must(os.Truncate(out, hwm))
}
