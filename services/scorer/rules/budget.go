package rules

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Limits bound what a rule set may cost per transaction. Compile enforces
// the static ones (deterministic: every scorer and alerts agree on them);
// Check also measures rules on sample transactions against EvalBudget and
// EvalAllocBudget. See docs/design/rule-cost.md.
type Limits struct {
	// MaxNodes bounds the syntax tree of one expression. Default 256.
	MaxNodes uint
	// MaxSteps bounds the static cost of one rule, in abstract operations
	// per transaction (cost.go). Default 10,000.
	MaxSteps int64
	// MaxSetSteps bounds the static cost of a whole set. Default 100,000.
	MaxSetSteps int64
	// MaxValueSize bounds any value a rule builds: bytes of a string,
	// elements of a list. Default 16 KiB.
	MaxValueSize int64
	// EvalBudget is the measured time one rule may take per transaction.
	// Default (Check) 100µs; 0 skips the measurement, as Compile does:
	// wall time differs between machines, and scorers must agree.
	EvalBudget time.Duration
	// EvalAllocBudget is the measured heap one rule may allocate per
	// transaction. Default (Check) 64 KiB; 0 skips it.
	EvalAllocBudget int64
}

// DefaultLimits are the limits of Check. Compile uses them without the
// measured budgets.
func DefaultLimits() Limits {
	return Limits{MaxNodes: 256, MaxSteps: 10_000, MaxSetSteps: 100_000, MaxValueSize: 16 << 10,
		EvalBudget: 100 * time.Microsecond, EvalAllocBudget: 64 << 10}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxNodes == 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = d.MaxSteps
	}
	if l.MaxSetSteps <= 0 {
		l.MaxSetSteps = d.MaxSetSteps
	}
	if l.MaxValueSize <= 0 {
		l.MaxValueSize = d.MaxValueSize
	}
	return l
}

// vmMemoryBudget is expr's own deterministic allocation count (elements
// of ranges, lists and maps, bytes of some builtins) allowed to one
// evaluation on the VM. The static bound keeps accepted rules well below
// it; a rule that reaches it anyway fails that evaluation and is disabled.
func (l Limits) vmMemoryBudget() uint { return uint(max(l.MaxSteps, l.MaxValueSize)) * 4 }

// WithLimits sets the limits Compile enforces (zero fields take their
// default; EvalBudget and EvalAllocBudget are not used by Compile).
// Default: DefaultLimits.
func WithLimits(l Limits) Option {
	return func(s *Set) { s.limits = l.withDefaults() }
}

// WithRunBudget sets the run-time guard: an evaluation of a rule on
// expr's VM is timed now and then (one in 64), and a rule whose timed
// evaluations take longer than d three times in a row is disabled in this
// Set (see WithDisableHook). Default 0: no timing; a rule is then only
// disabled when it exhausts the VM's deterministic memory budget.
func WithRunBudget(d time.Duration) Option {
	return func(s *Set) { s.runBudget = d }
}

// WithDisableHook calls hook once when a rule is disabled at run time,
// with the rule's id and why. It runs on the scoring goroutine, so it
// must be quick (log, increment a metric). Default: no hook; Set.Disabled
// lists disabled rules either way.
func WithDisableHook(hook func(ruleID, reason string)) Option {
	return func(s *Set) { s.disableHook = hook }
}

const (
	sampleEvery   = 64 // one evaluation in sampleEvery of a VM rule is timed
	overrunsToOff = 3  // consecutive timed overruns that disable a rule
)

// guard is the run-time state of one rule on the VM. Rules on the fast
// path never consult theirs: their cost is a few operations per node.
type guard struct {
	evals    atomic.Uint64
	overruns atomic.Int32 // consecutive timed evaluations over the budget
	off      atomic.Bool
	reason   atomic.Pointer[string]
}

// DisabledRule is a rule the run-time guard switched off, and why.
type DisabledRule struct {
	ID     string
	Reason string
}

// Disabled lists the rules of s disabled at run time, in rule order.
func (s *Set) Disabled() []DisabledRule {
	var out []DisabledRule
	for i := range s.rules {
		if g := s.rules[i].guard; g.off.Load() {
			out = append(out, DisabledRule{ID: s.rules[i].id, Reason: *g.reason.Load()})
		}
	}
	return out
}

func (s *Set) disable(r *compiled, reason string) {
	r.guard.reason.Store(&reason)
	if r.guard.off.CompareAndSwap(false, true) && s.disableHook != nil {
		s.disableHook(r.id, reason)
	}
}

// runGuarded evaluates a VM rule under the run-time guard.
func (s *Set) runGuarded(m *vm.VM, r *compiled, env *Env) bool {
	g := r.guard
	if s.runBudget <= 0 || (g.evals.Add(1)%sampleEvery != 0 && g.overruns.Load() == 0) {
		return s.run(m, r, env)
	}
	start := time.Now()
	match := s.run(m, r, env)
	if took := time.Since(start); took > s.runBudget {
		if g.overruns.Add(1) >= overrunsToOff {
			s.disable(r, fmt.Sprintf("took %v per transaction %d times in a row, above the run-time budget of %v",
				took.Round(time.Microsecond), overrunsToOff, s.runBudget))
		}
	} else {
		g.overruns.Store(0)
	}
	return match
}

// isBudgetError reports expr's "memory budget exceeded" (the VM panics
// with that text, and repeat returns it as an error).
func isBudgetError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "memory budget exceeded")
}

// sampleEnvs are the transactions Check measures rules on: nothing known,
// an ordinary card-present purchase, and a busy e-commerce card with every
// feature large.
func sampleEnvs() []Env {
	return []Env{
		{},
		{Count1m: 1, Count10m: 2, Count1h: 3, Count24h: 6, Sum1h: 12_000, Sum24h: 40_000, DistinctMerchants1h: 2,
			DistinctCountries24h: 1, SecsSincePrev: 900, KmFromPrev: 3, KmhFromPrev: 12, AmountZScore: 0.4, AmountRatio: 1.2,
			AccountAgeDays: 800, RiskTier: 1, AmountMinor: 4599, AmountUSD: 45.99, Currency: "USD",
			Channel: "card_present", MerchantCategory: "5814", MerchantCountry: "US", HourOfDay: 9},
		{Count1m: 40, Count10m: 300, Count1h: 1000, Count24h: 5000, Sum1h: 1 << 40, Sum24h: 1 << 42, DistinctMerchants1h: 200,
			DistinctCountries24h: 50, SmallCount10m: 250, SecsSincePrev: 0.5, KmFromPrev: 12_000, KmhFromPrev: 1e6,
			ArrivalKmh: 1e6, AmountZScore: 40, AmountRatio: 1000, NewCountry: true, NewMerchant: true, HomeCountryMismatch: true,
			AccountAgeDays: 0, RiskTier: 3, ProfileMissing: true, AmountMinor: 99_999_999, AmountUSD: 999_999.99,
			Currency: "EUR", Channel: "ecommerce", MerchantCategory: "6051", MerchantCountry: "NG", Ecommerce: true,
			HighRiskMCC: true, HourOfDay: 23},
	}
}

// measure evaluates every rule of s that runs on expr's VM on the sample
// transactions and returns a problem per rule over lim's measured budgets
// (or over the VM's memory budget), by rule index. Fast-path rules cost a
// few nanoseconds by construction and are not measured.
func (s *Set) measure(lim Limits) map[int]string {
	problems := map[int]string{}
	envs := sampleEnvs()
	m := s.newVM()
	for i := range s.rules {
		r := &s.rules[i]
		if r.fast != nil {
			continue
		}
		// One evaluation each first: an evaluation far over budget ends
		// the measurement at once.
		for j := range envs {
			start := time.Now()
			_, err := m.Run(r.prog, &envs[j])
			took := time.Since(start)
			if isBudgetError(err) {
				problems[i] = fmt.Sprintf("exceeds the evaluator's memory budget on sample transactions: %v", compileDetail(err))
				break
			}
			if lim.EvalBudget > 0 && took > 20*lim.EvalBudget {
				problems[i] = fmt.Sprintf("took %v for one sample transaction, above the budget of %v per transaction",
					took.Round(time.Microsecond), lim.EvalBudget)
				break
			}
		}
		if problems[i] != "" || (lim.EvalBudget <= 0 && lim.EvalAllocBudget <= 0) {
			continue
		}
		// The best of a few rounds: other goroutines and the GC only
		// ever make a round slower.
		const rounds, perRound = 3, 30
		best, bestBytes := time.Duration(1<<62), int64(1<<62)
		var ms runtime.MemStats
		for range rounds {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			start := time.Now()
			for k := range perRound {
				_, _ = m.Run(r.prog, &envs[k%len(envs)])
			}
			took := time.Since(start) / perRound
			runtime.ReadMemStats(&ms)
			best = min(best, took)
			bestBytes = min(bestBytes, int64(ms.TotalAlloc-before)/perRound)
		}
		switch {
		case lim.EvalBudget > 0 && best > lim.EvalBudget:
			problems[i] = fmt.Sprintf("takes %v per transaction on sample transactions, above the budget of %v",
				best.Round(100*time.Nanosecond), lim.EvalBudget)
		case lim.EvalAllocBudget > 0 && bestBytes > lim.EvalAllocBudget:
			problems[i] = fmt.Sprintf("allocates %d bytes per transaction on sample transactions, above the budget of %d",
				bestBytes, lim.EvalAllocBudget)
		}
	}
	return problems
}
