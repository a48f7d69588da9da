package windowing

import (
	"fmt"
	"time"
)

// Window is the half-open event-time interval [Start, End) in Unix
// milliseconds. It is complete when the watermark reaches End−1.
type Window struct{ Start, End int64 }

// MaxTime is the last instant in the window.
func (w Window) MaxTime() int64 { return w.End - 1 }

// Contains reports whether t is in [Start, End).
func (w Window) Contains(t int64) bool { return w.Start <= t && t < w.End }

// Assigner maps an event time to the fixed windows that contain it.
type Assigner interface {
	// AppendWindows appends the windows containing t to dst, in ascending
	// Start order, and returns the extended slice.
	AppendWindows(dst []Window, t int64) []Window
}

// Tumbling assigns every instant to exactly one window of a fixed size,
// aligned to the Unix epoch: [k·size, (k+1)·size).
type Tumbling struct{ size int64 }

// NewTumbling returns a tumbling assigner; size must be at least 1ms.
func NewTumbling(size time.Duration) (Tumbling, error) {
	s := millis(size)
	if s <= 0 {
		return Tumbling{}, fmt.Errorf("%w: tumbling size %v", ErrConfig, size)
	}
	return Tumbling{size: s}, nil
}

// Window returns the window containing t.
func (a Tumbling) Window(t int64) Window {
	s := floorDiv(t, a.size) * a.size
	return Window{Start: s, End: s + a.size}
}

// AppendWindows implements Assigner.
func (a Tumbling) AppendWindows(dst []Window, t int64) []Window {
	return append(dst, a.Window(t))
}

// Sliding (hopping) windows have a fixed size and start every slide, so an
// instant is in size/slide windows (rounded up): [k·slide, k·slide+size).
type Sliding struct{ size, slide int64 }

// NewSliding returns a sliding assigner; 0 < slide ≤ size.
func NewSliding(size, slide time.Duration) (Sliding, error) {
	s, l := millis(size), millis(slide)
	if l <= 0 || s < l {
		return Sliding{}, fmt.Errorf("%w: sliding size %v, slide %v", ErrConfig, size, slide)
	}
	return Sliding{size: s, slide: l}, nil
}

// AppendWindows implements Assigner.
func (a Sliding) AppendWindows(dst []Window, t int64) []Window {
	last := floorDiv(t, a.slide) * a.slide // latest start ≤ t
	first := last
	for first-a.slide > t-a.size {
		first -= a.slide
	}
	for s := first; s <= last; s += a.slide {
		dst = append(dst, Window{Start: s, End: s + a.size})
	}
	return dst
}

var (
	_ Assigner = Tumbling{}
	_ Assigner = Sliding{}
)
