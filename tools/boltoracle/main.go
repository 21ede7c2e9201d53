// boltoracle is the Go bbolt (1.3.6, 1.4.x, 1.5.x) reference oracle for etcdsnap's tests.
//
// Subcommands:
//
//	boltoracle check FILE
//	boltoracle dump FILE
//	boltoracle info FILE
//	boltoracle compact SRC DST [TXMAXSIZE]
//	boltoracle gen OUT --page-size N [--no-freelist-sync] [--seed S] [--keys K] [--free-heavy]
//
// Exit codes: 0 ok, 1 problems found, 2 usage/IO/open error (message on
// stderr), 3 bbolt panicked (check: "panic: <value>" on stdout).
//
// Build (GOPATH mode, see tools/install-oracles.sh):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o .oracles/bin/boltoracle tools/boltoracle/main.go
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

const usage = `usage:
  boltoracle check FILE
  boltoracle dump FILE
  boltoracle info FILE
  boltoracle compact SRC DST [TXMAXSIZE]
  boltoracle gen OUT --page-size N [--no-freelist-sync] [--seed S] [--keys K] [--free-heavy]
  boltoracle version
`

// bboltVersion names the bbolt this binary was built against; the install
// script sets it with -ldflags "-X main.bboltVersion=..." (GOPATH builds have
// no module information to read it from).
var bboltVersion = "unknown"

// Hidden subcommand: the check child process. bbolt's Tx.Check runs in its
// own goroutine, so a panic there cannot be recovered in this process; the
// parent runs the check in a child and converts a runtime panic into exit 3.
const checkChild = "__check-child"

// Exit code the check child uses for its own (usage/open) errors, so the
// parent can tell them apart from the Go runtime's panic exit code 2.
const childOpenErr = 10

func main() {
	if len(os.Args) < 2 {
		die(usage)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "check":
		need(args, 1, 1)
		os.Exit(runCheckParent(args[0]))
	case checkChild:
		need(args, 1, 1)
		os.Exit(runCheckChild(args[0]))
	case "dump":
		need(args, 1, 1)
		os.Exit(runDump(args[0]))
	case "info":
		need(args, 1, 1)
		os.Exit(runInfo(args[0]))
	case "compact":
		need(args, 2, 3)
		os.Exit(runCompact(args))
	case "gen":
		os.Exit(runGen(args))
	case "version":
		fmt.Println(bboltVersion)
		os.Exit(0)
	case "-h", "--help", "help":
		fmt.Print(usage)
		os.Exit(0)
	default:
		die("unknown subcommand %q\n%s", os.Args[1], usage)
	}
}

func need(args []string, min, max int) {
	if len(args) < min || len(args) > max {
		die("wrong number of arguments\n%s", usage)
	}
}

func die(format string, a ...interface{}) {
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprint(os.Stderr, "boltoracle: "+msg)
	os.Exit(2)
}

func openRO(path string) (*bolt.DB, error) {
	// bolt.Open on a missing file in read-only mode would fail anyway, but
	// give a clear message.
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return bolt.Open(path, 0400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
}

// ---------------------------------------------------------------- check

func runCheckParent(path string) int {
	self, err := os.Executable()
	if err != nil {
		die("cannot find own executable: %v", err)
	}
	cmd := exec.Command(self, checkChild, path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			die("running check child: %v", err)
		}
		code = ee.ExitCode()
	}
	switch code {
	case 0, 1:
		os.Stdout.Write(stdout.Bytes())
		os.Stderr.Write(stderr.Bytes())
		return code
	case childOpenErr:
		os.Stderr.Write(stderr.Bytes())
		return 2
	}
	// Anything else: the Go runtime died (panic exits 2, fatal errors 2,
	// signals -1). Print the errors reported so far, then the panic value.
	os.Stdout.Write(stdout.Bytes())
	fmt.Printf("panic: %s\n", panicValue(stderr.String(), code))
	return 3
}

// panicValue extracts the panic value from the Go runtime's crash output.
func panicValue(s string, code int) string {
	if i := strings.Index(s, "panic: "); i >= 0 {
		v := s[i+len("panic: "):]
		// The value ends before the goroutine trace / signal line.
		for _, end := range []string{"\n\ngoroutine ", "\n[signal ", "\ngoroutine "} {
			if j := strings.Index(v, end); j >= 0 {
				v = v[:j]
			}
		}
		v = strings.TrimSuffix(v, " [recovered]")
		return strings.TrimRight(v, "\n")
	}
	if i := strings.Index(s, "fatal error: "); i >= 0 {
		v := s[i:]
		if j := strings.IndexByte(v, '\n'); j >= 0 {
			v = v[:j]
		}
		// e.g. "unexpected fault address 0x..." precedes "fatal error: fault".
		if k := strings.LastIndex(s[:i], "unexpected fault address "); k >= 0 {
			line := s[k:i]
			v += " (" + strings.TrimSpace(line) + ")"
		}
		return v
	}
	first := strings.TrimSpace(s)
	if j := strings.IndexByte(first, '\n'); j >= 0 {
		first = first[:j]
	}
	return fmt.Sprintf("child exited with code %d: %s", code, first)
}

func runCheckChild(path string) int {
	db, err := openRO(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "boltoracle: open %s: %v\n", path, err)
		return childOpenErr
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "boltoracle: begin tx: %v\n", err)
		return childOpenErr
	}
	defer tx.Rollback()
	// Unbuffered writes: if bbolt panics, everything reported so far must
	// already be in the pipe to the parent.
	n := 0
	for e := range tx.Check() {
		fmt.Fprintln(os.Stdout, e.Error())
		n++
	}
	if n > 0 {
		fmt.Printf("%d errors found\n", n)
		return 1
	}
	fmt.Println("OK")
	return 0
}

// ---------------------------------------------------------------- dump

type dumper struct {
	w      *bufio.Writer
	nB, nK uint64
}

func runDump(path string) (code int) {
	db, err := openRO(path)
	if err != nil {
		die("open %s: %v", path, err)
	}
	defer db.Close()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	d := &dumper{w: w}
	debug.SetPanicOnFault(true)
	defer func() {
		if r := recover(); r != nil {
			w.Flush()
			fmt.Fprintf(os.Stderr, "panic: %v\n", r)
			code = 3
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		d.walk(tx.Cursor(), "")
		return nil
	})
	if err != nil {
		w.Flush()
		die("dump: %v", err)
	}
	fmt.Fprintf(w, "END %d %d\n", d.nB, d.nK)
	if err := w.Flush(); err != nil {
		die("write: %v", err)
	}
	return 0
}

// walk dumps every key of the cursor's bucket; path is the bucket's path
// ("" for the root bucket, whose keys should all be buckets).
func (d *dumper) walk(c *bolt.Cursor, path string) {
	parent := c.Bucket()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			child := parent.Bucket(k)
			p := hex.EncodeToString(k)
			if path != "" {
				p = path + "/" + p
			}
			if child == nil {
				// Cursor says bucket but Bucket() disagrees; should not happen.
				fmt.Fprintf(d.w, "B %s ?\n", p)
				d.nB++
				continue
			}
			fmt.Fprintf(d.w, "B %s %d\n", p, child.Sequence())
			d.nB++
			d.walk(child.Cursor(), p)
			continue
		}
		val := "-"
		if len(v) > 0 {
			val = hex.EncodeToString(v)
		}
		d.w.WriteString("K ")
		d.w.WriteString(path)
		d.w.WriteByte(' ')
		d.w.WriteString(hex.EncodeToString(k))
		d.w.WriteByte(' ')
		d.w.WriteString(val)
		d.w.WriteByte('\n')
		d.nK++
	}
}

// ---------------------------------------------------------------- info

type rawMeta struct {
	magic, version, pageSize, flags uint32
	root, sequence                  uint64
	freelist, pgid, txid, checksum  uint64
}

// readMeta reads the meta on page `which` (0 or 1) straight from the file.
func readMeta(f *os.File, pageSize int, which int) (rawMeta, error) {
	buf := make([]byte, 16+64)
	if _, err := f.ReadAt(buf, int64(which*pageSize)); err != nil {
		return rawMeta{}, err
	}
	b := buf[16:]
	le := binary.LittleEndian
	return rawMeta{
		magic: le.Uint32(b[0:]), version: le.Uint32(b[4:]),
		pageSize: le.Uint32(b[8:]), flags: le.Uint32(b[12:]),
		root: le.Uint64(b[16:]), sequence: le.Uint64(b[24:]),
		freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]),
		txid: le.Uint64(b[48:]), checksum: le.Uint64(b[56:]),
	}, nil
}

func runInfo(path string) int {
	db, err := openRO(path)
	if err != nil {
		die("open %s: %v", path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		die("begin tx: %v", err)
	}
	defer tx.Rollback()
	pageSize := tx.DB().Info().PageSize
	root := uint64(tx.Cursor().Bucket().Root())
	txid := uint64(tx.ID())
	pgid := uint64(tx.Size()) / uint64(pageSize)

	// bbolt 1.3.6 does not expose the meta's freelist page id; read both
	// metas from the file and take the one matching the open transaction.
	f, err := os.Open(path)
	if err != nil {
		die("open %s: %v", path, err)
	}
	defer f.Close()
	var sel *rawMeta
	for _, which := range []int{1, 0} { // prefer the later one on a tie, like db.meta()'s swap
		m, err := readMeta(f, pageSize, which)
		if err != nil {
			continue
		}
		if m.txid == txid && m.root == root && m.pgid == pgid {
			mm := m
			if sel == nil || which == 0 {
				sel = &mm
			}
		}
	}
	if sel == nil {
		die("cannot find the meta page matching txid %d", txid)
	}
	fmt.Printf("pageSize=%d\nroot=%d\nfreelist=%d\npgid=%d\ntxid=%d\n",
		pageSize, root, sel.freelist, pgid, txid)
	return 0
}

// ---------------------------------------------------------------- compact

func runCompact(args []string) int {
	src, dst := args[0], args[1]
	txMax := int64(65536)
	if len(args) == 3 {
		v, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil || v < 0 {
			die("bad TXMAXSIZE %q", args[2])
		}
		txMax = v
	}
	if src == dst {
		die("SRC and DST must differ")
	}
	sdb, err := openRO(src)
	if err != nil {
		die("open %s: %v", src, err)
	}
	defer sdb.Close()
	ddb, err := bolt.Open(dst, 0600, nil)
	if err != nil {
		die("open %s: %v", dst, err)
	}
	// BOLTORACLE_NOSYNC=1: no fsync per transaction, one at the end (the
	// fairest comparison with a writer that syncs once).
	nosync := os.Getenv("BOLTORACLE_NOSYNC") == "1"
	ddb.NoSync = nosync
	if err := bolt.Compact(ddb, sdb, txMax); err != nil {
		ddb.Close()
		die("compact: %v", err)
	}
	if nosync {
		if err := ddb.Sync(); err != nil {
			die("sync %s: %v", dst, err)
		}
	}
	if err := ddb.Close(); err != nil {
		die("close %s: %v", dst, err)
	}
	si, err := os.Stat(src)
	if err != nil {
		die("%v", err)
	}
	di, err := os.Stat(dst)
	if err != nil {
		die("%v", err)
	}
	fmt.Printf("%d %d\n", si.Size(), di.Size())
	return 0
}

// ---------------------------------------------------------------- gen

type genOpts struct {
	out        string
	pageSize   int
	noFLSync   bool
	seed       int64
	keys       int
	freeHeavy  bool
	pageSizeOK bool
}

func parseGen(args []string) genOpts {
	o := genOpts{seed: 1, keys: 5000}
	intArg := func(i *int, name string) string {
		*i++
		if *i >= len(args) {
			die("%s needs a value", name)
		}
		return args[*i]
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--page-size":
			v, err := strconv.Atoi(intArg(&i, a))
			if err != nil || v < 1024 || v&(v-1) != 0 {
				die("bad --page-size (need a power of two >= 1024)")
			}
			o.pageSize, o.pageSizeOK = v, true
		case a == "--no-freelist-sync":
			o.noFLSync = true
		case a == "--seed":
			v, err := strconv.ParseInt(intArg(&i, a), 10, 64)
			if err != nil {
				die("bad --seed")
			}
			o.seed = v
		case a == "--keys":
			v, err := strconv.Atoi(intArg(&i, a))
			if err != nil || v < 0 {
				die("bad --keys")
			}
			o.keys = v
		case a == "--free-heavy":
			o.freeHeavy = true
		case strings.HasPrefix(a, "--"):
			die("unknown option %q\n%s", a, usage)
		default:
			if o.out != "" {
				die("more than one OUT\n%s", usage)
			}
			o.out = a
		}
	}
	if o.out == "" || !o.pageSizeOK {
		die("gen needs OUT and --page-size\n%s", usage)
	}
	return o
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func randRange(r *rand.Rand, lo, hi int) int { return lo + r.Intn(hi-lo+1) }

func runGen(args []string) int {
	o := parseGen(args)
	if err := os.Remove(o.out); err != nil && !os.IsNotExist(err) {
		die("remove %s: %v", o.out, err)
	}
	db, err := bolt.Open(o.out, 0600, &bolt.Options{
		PageSize: o.pageSize, NoFreelistSync: o.noFLSync, Timeout: time.Second,
	})
	if err != nil {
		die("open %s: %v", o.out, err)
	}
	r := rand.New(rand.NewSource(o.seed))
	if err := generate(db, r, o); err != nil {
		db.Close()
		die("gen: %v", err)
	}
	if err := db.Close(); err != nil {
		die("close: %v", err)
	}
	return 0
}

func update(db *bolt.DB, fn func(tx *bolt.Tx) error) error { return db.Update(fn) }

func generate(db *bolt.DB, r *rand.Rand, o genOpts) error {
	ps := o.pageSize
	// Tx 1: the fixed buckets and the small/odd keys.
	if err := update(db, func(tx *bolt.Tx) error {
		for _, n := range []string{"alpha", "big", "empty", "nested", "small"} {
			if _, err := tx.CreateBucket([]byte(n)); err != nil {
				return fmt.Errorf("create %s: %v", n, err)
			}
		}
		small := tx.Bucket([]byte("small"))
		if err := small.Put([]byte("k1"), []byte("v1")); err != nil {
			return err
		}
		if err := small.Put([]byte("k2"), []byte{}); err != nil {
			return err
		}
		alpha := tx.Bucket([]byte("alpha"))
		for _, kv := range [][2]string{
			{"a", "1"}, {"ab", "2"}, {"abc", ""}, {"\x00", "zero"},
			{"\x00\x00", "\x00"}, {"a\x00", "a-nul"}, {"\xff", "ff"},
			{"\xff\xff", "\xff\xff\xff"}, {"b", "b"},
		} {
			if err := alpha.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		if err := alpha.SetSequence(42); err != nil {
			return err
		}
		return nil
	}); err != nil {
		return err
	}

	// Several transactions filling "big".
	var bigKeys [][]byte
	const perTx = 1000
	for done := 0; done < o.keys; {
		n := o.keys - done
		if n > perTx {
			n = perTx
		}
		if err := update(db, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("big"))
			for i := 0; i < n; i++ {
				k := randBytes(r, randRange(r, 8, 40))
				v := randBytes(r, randRange(r, 0, 300))
				if err := b.Put(k, v); err != nil {
					return err
				}
				bigKeys = append(bigKeys, k)
			}
			return nil
		}); err != nil {
			return err
		}
		done += n
	}
	// Overflow values and the maximum-size key.
	if err := update(db, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("big"))
		for i, sz := range []int{3 * ps, 10 * ps, 3*ps + 17, 10*ps - 1} {
			k := []byte(fmt.Sprintf("overflow-%d", i))
			if err := b.Put(k, randBytes(r, sz)); err != nil {
				return err
			}
		}
		huge := randBytes(r, bolt.MaxKeySize)
		huge[0] = 0x7f
		if err := b.Put(huge, []byte("huge key value")); err != nil {
			return err
		}
		return b.SetSequence(1000000007)
	}); err != nil {
		return err
	}

	// "nested": three levels, mix of inline-sized and large sub-buckets.
	if err := update(db, func(tx *bolt.Tx) error {
		nb := tx.Bucket([]byte("nested"))
		if err := nb.Put([]byte("plain"), []byte("value at level 1")); err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			l1, err := nb.CreateBucket([]byte(fmt.Sprintf("l1-%d", i)))
			if err != nil {
				return err
			}
			if err := l1.Put([]byte("x"), []byte(fmt.Sprintf("l1 %d", i))); err != nil {
				return err
			}
			for j := 0; j < 3; j++ {
				l2, err := l1.CreateBucket([]byte(fmt.Sprintf("l2-%d", j)))
				if err != nil {
					return err
				}
				for k := 0; k < 3; k++ {
					l3, err := l2.CreateBucket([]byte(fmt.Sprintf("l3-%d", k)))
					if err != nil {
						return err
					}
					// (i+j+k)%3: 0 empty inline, 1 small inline, 2 large (paged).
					switch (i + j + k) % 3 {
					case 1:
						for m := 0; m < 3; m++ {
							if err := l3.Put([]byte{byte('a' + m)}, randBytes(r, randRange(r, 0, 10))); err != nil {
								return err
							}
						}
					case 2:
						cnt := randRange(r, ps/16, ps/4)
						for m := 0; m < cnt; m++ {
							if err := l3.Put(randBytes(r, randRange(r, 4, 20)), randBytes(r, randRange(r, 0, 200))); err != nil {
								return err
							}
						}
					}
					if k == 1 {
						if err := l3.SetSequence(uint64(100*i + 10*j + k)); err != nil {
							return err
						}
					}
				}
				if err := l2.Put([]byte("zz-after"), []byte("after sub-buckets")); err != nil {
					return err
				}
			}
		}
		return nb.SetSequence(7)
	}); err != nil {
		return err
	}

	// Delete about a third of "big" (free pages, non-empty freelist).
	if err := update(db, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("big"))
		for i, k := range bigKeys {
			if i%3 == 1 {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return b.Delete([]byte("overflow-1"))
	}); err != nil {
		return err
	}
	// And put some more.
	if err := update(db, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("big"))
		for i := 0; i < o.keys/10; i++ {
			if err := b.Put(randBytes(r, randRange(r, 8, 40)), randBytes(r, randRange(r, 0, 300))); err != nil {
				return err
			}
		}
		// Overwrite some survivors.
		for i, k := range bigKeys {
			if i%7 == 0 && i%3 != 1 {
				if err := b.Put(k, randBytes(r, randRange(r, 0, 50))); err != nil {
					return err
				}
			}
		}
		s := tx.Bucket([]byte("small"))
		return s.SetSequence(3)
	}); err != nil {
		return err
	}

	if !o.freeHeavy {
		return nil
	}
	// Free-heavy: fill a bucket with > 65535 pages worth of overflow values
	// over several transactions, then delete it in one, so the committed
	// freelist holds more than 0xFFFF ids.
	target := 70000 // pages
	valPages := 256
	valSize := valPages*ps - 64
	nVals := target/valPages + 1
	for done := 0; done < nVals; {
		n := nVals - done
		if n > 64 {
			n = 64
		}
		if err := update(db, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("heavy"))
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				k := []byte(fmt.Sprintf("heavy-%06d", done+i))
				v := make([]byte, valSize)
				r.Read(v[:64])
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		done += n
	}
	return update(db, func(tx *bolt.Tx) error {
		return tx.DeleteBucket([]byte("heavy"))
	})
}
