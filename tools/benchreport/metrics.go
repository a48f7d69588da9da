package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseMetrics picks the heap, goroutine and RSS gauges out of the
// Prometheus text format.
func parseMetrics(name string, r io.Reader) (Sample, error) {
	s := Sample{Service: name}
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		var dst *float64
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			dst = &s.HeapInuse
		case "go_memstats_next_gc_bytes":
			dst = &s.NextGC
		case "go_goroutines":
			dst = &s.Goroutines
		case "process_resident_memory_bytes":
			dst = &s.RSS
		default:
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return s, fmt.Errorf("%s: %w", f[0], err)
		}
		*dst = v
		found++
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if found < 2 {
		return s, fmt.Errorf("no go_memstats_heap_inuse_bytes / go_goroutines in the metrics")
	}
	return s, nil
}
