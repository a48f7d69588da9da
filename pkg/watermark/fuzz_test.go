package watermark

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzCombiner decodes the input as a sequence of operations, applies them
// to the combiner and to the oracle, and requires the same watermark after
// every step. It also checks that the watermark never moves backwards.
func FuzzCombiner(f *testing.F) {
	f.Add(uint8(3), uint8(2), []byte{0, 1, 10, 0, 1, 2, 5, 0, 0, 0, 30, 0, 200, 9})
	f.Add(uint8(0), uint8(0), []byte{})
	f.Add(uint8(255), uint8(1), []byte{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0, 0, 128, 255, 0, 7})
	f.Fuzz(func(t *testing.T, delay, idle uint8, ops []byte) {
		c := NewCombiner(WithMaxDelay(time.Duration(delay)*time.Millisecond), WithIdleTimeout(time.Duration(idle)*time.Millisecond))
		o := newOracle(int64(delay), int64(idle))
		prev := None
		var now int64
		for len(ops) >= 4 {
			op, in := ops[0]%8, int(ops[1]%6)
			v := int64(int16(binary.LittleEndian.Uint16(ops[2:4])))
			ops = ops[4:]
			now += int64(op) // small steps of processing time
			switch op {
			case 0:
				c.Remove(in, now)
				o.remove(in, now)
			case 1:
				c.Add(in, now)
				o.add(in, now)
			case 2:
				now += v
				c.Tick(now)
				o.tick(now)
				o.eval()
			default:
				c.Observe(in, v, now)
				o.observe(in, v, now)
			}
			got := c.Current()
			if got != o.current {
				t.Fatalf("combined watermark %d, oracle %d", got, o.current)
			}
			if got < prev {
				t.Fatalf("watermark went back from %d to %d", prev, got)
			}
			prev = got
		}
	})
}

// FuzzClassify checks that the three lateness classes partition the time
// line in order: on time above the watermark, then late, then too late.
func FuzzClassify(f *testing.F) {
	f.Add(int64(5), int64(10), int64(3))
	f.Add(int64(-1<<63), int64(-1<<63), int64(1<<62))
	f.Fuzz(func(t *testing.T, ts, wm, lateMs int64) {
		late := time.Duration(lateMs%(1<<40)) * time.Millisecond
		got := Classify(ts, wm, late)
		if ts > wm && got != OnTime || ts <= wm && got == OnTime {
			t.Fatalf("Classify(%d, %d, %v) = %v", ts, wm, late, got)
		}
		if ts < 1<<62 && got < Classify(ts+1, wm, late) {
			t.Fatalf("classes out of order at %d", ts)
		}
	})
}
