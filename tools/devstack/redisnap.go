package devstack

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// The in-process Redis (miniredis) keeps its data in memory only. Without
// help a restarted dev stack would forget ingest's idempotency records and
// answer a retried transaction 202 as new. redisSnapshot makes its state
// survive restarts: every key of every database (strings, hashes, lists,
// sets, sorted sets) with its expiry is written to redis.snapshot in the
// data dir, atomically (temporary file, fsync, rename), about every second
// while commands arrive and once more at a clean shutdown, and read back
// at start. Expiry is stored as an absolute time, so time stopped counts as
// it would for a real Redis, and keys that expired meanwhile are not
// restored. A SIGKILL loses what was written since the last snapshot.
//
// miniredis counts TTLs down only when told to; the snapshot loop moves its
// clock forward by the time elapsed each tick, so TTLs (and the claim ages
// ingest computes from them) follow the wall clock at one-second grain.

const (
	snapshotFile    = "redis.snapshot"
	snapshotVersion = 1
	// snapshotTick is how often TTLs advance and a snapshot is considered.
	snapshotTick = time.Second
	// snapshotCostFactor keeps snapshotting below a tenth of the time: the
	// next snapshot waits ten times as long as the last one took.
	snapshotCostFactor = 10
	// snapshotDBs are the databases saved; miniredis, like Redis, has 16.
	snapshotDBs = 16
)

type snapFile struct {
	Version int
	SavedAt time.Time
	Keys    []snapKey
}

// snapKey is one key; exactly the field of its Type is set. gob keeps
// strings byte for byte (JSON would mangle binary values).
type snapKey struct {
	DB     int
	Key    string
	Type   string
	Expire time.Time // zero: no TTL
	String string
	Hash   map[string]string
	List   []string
	Set    []string
	ZSet   map[string]float64
}

type redisSnapshot struct {
	m    *miniredis.Miniredis
	path string
	log  *slog.Logger
}

func newRedisSnapshot(m *miniredis.Miniredis, dataDir string, log *slog.Logger) *redisSnapshot {
	return &redisSnapshot{m: m, path: filepath.Join(dataDir, snapshotFile), log: log}
}

// restore loads the snapshot, if there is one, into the empty server. It
// returns the number of keys restored.
func (s *redisSnapshot) restore(now time.Time) (int, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, s.restoreErr(err)
	}
	defer f.Close()
	var snap snapFile
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&snap); err != nil {
		return 0, s.restoreErr(err)
	}
	if snap.Version != snapshotVersion {
		return 0, s.restoreErr(fmt.Errorf("version %d, want %d", snap.Version, snapshotVersion))
	}
	n := 0
	for _, k := range snap.Keys {
		if !k.Expire.IsZero() && !k.Expire.After(now) {
			continue // expired while the stack was stopped
		}
		db := s.m.DB(k.DB)
		var err error
		switch k.Type {
		case "string":
			err = db.Set(k.Key, k.String)
		case "hash":
			for f, v := range k.Hash {
				db.HSet(k.Key, f, v)
			}
		case "list":
			_, err = db.Push(k.Key, k.List...)
		case "set":
			_, err = db.SetAdd(k.Key, k.Set...)
		case "zset":
			for m, sc := range k.ZSet {
				if _, err = db.ZAdd(k.Key, sc, m); err != nil {
					break
				}
			}
		default:
			err = fmt.Errorf("unknown type %q", k.Type)
		}
		if err != nil {
			return n, s.restoreErr(fmt.Errorf("key %q: %w", k.Key, err))
		}
		if !k.Expire.IsZero() {
			db.SetTTL(k.Key, k.Expire.Sub(now))
		}
		n++
	}
	return n, nil
}

func (s *redisSnapshot) restoreErr(err error) error {
	return fmt.Errorf("restore in-process redis from %s: %w (remove the file to start with an empty Redis; ingest then forgets which transactions it accepted)", s.path, err)
}

// save writes every key to the snapshot file atomically. Each key is read
// atomically, the whole set is not: a key written during the save may be
// missing, and is in the next one.
func (s *redisSnapshot) save(now time.Time) (int, error) {
	snap := snapFile{Version: snapshotVersion, SavedAt: now}
	for i := range snapshotDBs {
		db := s.m.DB(i)
		for _, key := range db.Keys() {
			k := snapKey{DB: i, Key: key, Type: db.Type(key)}
			if ttl := db.TTL(key); ttl > 0 {
				k.Expire = now.Add(ttl)
			}
			var err error
			switch k.Type {
			case "":
				continue // deleted since Keys
			case "string":
				k.String, err = db.Get(key)
			case "hash":
				var fields []string
				if fields, err = db.HKeys(key); err == nil {
					k.Hash = make(map[string]string, len(fields))
					for _, f := range fields {
						k.Hash[f] = db.HGet(key, f)
					}
				}
			case "list":
				k.List, err = db.List(key)
			case "set":
				k.Set, err = db.Members(key)
			case "zset":
				k.ZSet, err = db.SortedSet(key)
			default:
				return 0, fmt.Errorf("snapshot in-process redis: key %q has type %s, which the snapshot cannot store", key, k.Type)
			}
			if errors.Is(err, miniredis.ErrKeyNotFound) || errors.Is(err, miniredis.ErrWrongType) {
				continue // deleted or replaced during the save: the next one has it
			}
			if err != nil {
				return 0, fmt.Errorf("snapshot in-process redis: key %q: %w", key, err)
			}
			snap.Keys = append(snap.Keys, k)
		}
	}
	if err := writeAtomic(s.path, func(w *bufio.Writer) error { return gob.NewEncoder(w).Encode(&snap) }); err != nil {
		return 0, fmt.Errorf("snapshot in-process redis: %w", err)
	}
	return len(snap.Keys), nil
}

// writeAtomic writes path through a temporary file in its directory, synced
// and renamed over it, so a crash leaves the old file or the new one.
func writeAtomic(path string, write func(*bufio.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	w := bufio.NewWriterSize(f, 1<<16)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync() // the rename itself survives a crash
}

// run advances TTLs every tick and saves a snapshot when commands arrived
// since the last one, until stop is closed. Save failures are logged and
// retried on the next tick; the final save at shutdown reports its error.
func (s *redisSnapshot) run(stop <-chan struct{}) {
	t := time.NewTicker(snapshotTick)
	defer t.Stop()
	last := time.Now()
	lastCommands := s.m.CommandCount()
	var next time.Time
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.m.FastForward(now.Sub(last))
			last = now
			if now.Before(next) {
				continue
			}
			cmds := s.m.CommandCount()
			if cmds == lastCommands {
				continue
			}
			started := time.Now()
			if _, err := s.save(started); err != nil {
				s.log.Error("snapshot of the in-process redis failed; retrying", "err", err)
				continue
			}
			lastCommands = cmds
			next = started.Add(snapshotCostFactor * time.Since(started))
		}
	}
}
