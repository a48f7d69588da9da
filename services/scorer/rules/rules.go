// Package rules compiles the analysts' fraud rules, expressions over a
// transaction's features such as
//
//	kmh_from_prev > 900 && km_from_prev > 500
//
// into a Set that the scorer evaluates for every transaction.
//
// An expression is written in the expr language
// (github.com/expr-lang/expr) over the variables of Env: every feature
// under its JSON name (count_1m, amount_zscore, new_country, …) and a few
// transaction fields (amount_minor, channel, merchant_category,
// merchant_country, currency, hour_of_day). Compile type-checks each one
// against Env and requires a boolean, so a typo or a comparison of a
// string with a number is refused when the rule set is published, never
// discovered while scoring. Check is that test for callers that only
// validate (alerts, before publishing to fraud-rules).
//
// Every accepted rule has a bounded cost per transaction: Compile bounds
// each expression from its syntax tree (cost.go) and refuses one without a
// bound within Limits, Check also measures rules on sample transactions,
// and at run time a rule over its budget is disabled in its Set
// (WithRunBudget, WithDisableHook). See docs/design/rule-cost.md.
//
// A matching rule becomes an event.Reason. Active rules move the score:
// the model probability and the weights w of the matching active rules
// combine as independent evidence (see Combine),
//
//	score = 1 − (1 − p_model) · ∏ (1 − w)
//
// while shadow rules are evaluated and reported (Reason.Shadow) but leave
// the score alone, so a new rule can be watched on live traffic before it
// decides anything.
//
// Evaluation is fast and allocation-free for the usual shape of rule:
// expressions are lowered to Go closures over Env (see fast.go), and the
// rest run on expr's VM, reused from a pool. A rule that fails at run time
// (an integer modulo by zero, say) counts as not matched: one bad rule
// must not stop a partition. Such failures are counted (Set.RuntimeErrors)
// and reported to the hook given with WithRuntimeErrorHook.
package rules

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Set is a compiled rule set. It is immutable and safe for concurrent use
// by any number of goroutines (one per partition, say).
type Set struct {
	version     int64
	rules       []compiled
	hook        func(ruleID string, err error)
	errs        atomic.Uint64
	vms         sync.Pool // *vm.VM for rules that run on expr's VM
	limits      Limits
	runBudget   time.Duration
	disableHook func(ruleID, reason string)
}

type compiled struct {
	reason event.Reason // what a match reports; Source, Code, Weight, Detail, Shadow
	id     string
	fast   func(*Env) bool // nil when the rule runs on prog
	prog   *vm.Program
	guard  *guard // run-time guard, used only while the rule runs on prog
}

// Option configures Compile.
type Option func(*Set)

// WithRuntimeErrorHook calls hook whenever a rule fails at run time, with
// the rule's id and expr's error; the rule then counts as not matched.
// The hook runs on the scoring goroutine, so it must be quick (increment a
// metric, log at a sampled rate). Default: no hook; Set.RuntimeErrors
// counts failures either way.
func WithRuntimeErrorHook(hook func(ruleID string, err error)) Option {
	return func(s *Set) { s.hook = hook }
}

// exprOptions are the compile options of every rule: typed over Env, a
// boolean result, and no builtins that read the clock or the local time
// zone, since a rule must give the same answer when a partition is
// replayed.
func exprOptions() []expr.Option {
	return exprOptionsLimited(DefaultLimits())
}

func exprOptionsLimited(lim Limits) []expr.Option {
	return []expr.Option{
		expr.MaxNodes(lim.MaxNodes),
		expr.Env(Env{}),
		expr.AsBool(),
		expr.DisableBuiltin("now"),
		expr.DisableBuiltin("date"),
		expr.DisableBuiltin("timezone"),
		// Lowering wants the tree as the checker left it; the optimizer
		// only helps rules that fall back to the VM.
		expr.Optimize(false),
	}
}

// Compile validates rs (structure and every expression) and compiles it.
// All problems are reported at once in an *event.ValidationError: those of
// RuleSet.Validate, and per rule "/rules/i/expression" with expr's message
// and position, or why the rule's cost per transaction has no bound within
// the static Limits (see WithLimits and cost.go). It measures nothing, so
// every scorer reaches the same verdict on the same set.
func Compile(rs event.RuleSet, opts ...Option) (*Set, error) {
	var ve event.ValidationError
	if err := rs.Validate(); err != nil {
		var vErr *event.ValidationError
		if !errors.As(err, &vErr) {
			return nil, err
		}
		ve.Errors = append(ve.Errors, vErr.Errors...)
	}
	s := &Set{version: rs.Version, rules: make([]compiled, 0, len(rs.Rules)), limits: DefaultLimits()}
	for _, o := range opts {
		o(s)
	}
	s.vms.New = func() any { return s.newVM() }
	var setSteps int64
	for i, r := range rs.Rules {
		if r.Expression == "" || len(r.Expression) > event.MaxRuleExpressionLen {
			continue // Validate reported it
		}
		prog, err := expr.Compile(r.Expression, exprOptionsLimited(s.limits)...)
		if err != nil {
			ve.Errors = append(ve.Errors, event.FieldError{
				Pointer: fmt.Sprintf("/rules/%d/expression", i),
				Detail:  compileDetail(err),
			})
			continue
		}
		cost, err := staticCost(prog.Node(), s.limits)
		if err != nil {
			ve.Errors = append(ve.Errors, event.FieldError{
				Pointer: fmt.Sprintf("/rules/%d/expression", i),
				Detail:  fmt.Sprintf("rule %q is refused: %v", r.ID, err),
			})
			continue
		}
		setSteps = add(setSteps, cost.steps)
		detail := r.Description
		if detail == "" {
			detail = r.ID
		}
		c := compiled{
			id:   r.ID,
			prog: prog,
			reason: event.Reason{
				Code:   r.ReasonCode,
				Source: event.SourceRule,
				Weight: r.Weight,
				Detail: detail,
				Shadow: r.Mode == event.ModeShadow,
			},
		}
		c.fast, _ = lowerBool(prog.Node())
		c.guard = new(guard)
		s.rules = append(s.rules, c)
	}
	if setSteps > s.limits.MaxSetSteps {
		ve.Errors = append(ve.Errors, event.FieldError{
			Pointer: "/rules",
			Detail: fmt.Sprintf("the rules together may cost %d steps per transaction, above the limit of %d",
				setSteps, s.limits.MaxSetSteps),
		})
	}
	if len(ve.Errors) > 0 {
		return nil, &ve
	}
	return s, nil
}

// compileDetail is expr's message with its position as one line; expr's
// own Error() adds a multi-line caret diagram that does not fit a field
// error.
func compileDetail(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Line > 0 {
			return fmt.Sprintf("%s (line %d, column %d)", fe.Message, fe.Line, fe.Column+1)
		}
		return fe.Message
	}
	return err.Error()
}

func (s *Set) newVM() *vm.VM { return &vm.VM{MemoryBudget: s.limits.vmMemoryBudget()} }

// Check reports whether rs is a rule set the scorer can evaluate within
// DefaultLimits: nil, or an *event.ValidationError listing every problem
// by JSON pointer. It is the checker alerts runs before publishing a rule
// set to fraud-rules (see Checker).
func Check(rs event.RuleSet) error { return Checker(DefaultLimits())(rs) }

// Checker returns a Check with limits lim (zero fields take their
// default, except the measured budgets, where 0 skips the measurement):
// Compile's static limits, then every rule on expr's VM measured on
// sample transactions against lim.EvalBudget and lim.EvalAllocBudget.
func Checker(lim Limits) func(event.RuleSet) error {
	return func(rs event.RuleSet) error {
		set, err := Compile(rs, WithLimits(lim))
		if err != nil {
			return err
		}
		problems := set.measure(lim)
		if len(problems) == 0 {
			return nil
		}
		var ve event.ValidationError
		for i, r := range rs.Rules { // set.rules[i] is rs.Rules[i]: Compile refused nothing
			if p, ok := problems[i]; ok {
				ve.Errors = append(ve.Errors, event.FieldError{
					Pointer: fmt.Sprintf("/rules/%d/expression", i),
					Detail:  fmt.Sprintf("rule %q is refused: %s", r.ID, p),
				})
			}
		}
		return &ve
	}
}

// Version is the version of the rule set s was compiled from; the scorer
// writes it into every scored record.
func (s *Set) Version() int64 { return s.version }

// Len is the number of rules in s.
func (s *Set) Len() int { return len(s.rules) }

// RuntimeErrors is how many rule evaluations have failed since s was
// compiled (each counted as not matched).
func (s *Set) RuntimeErrors() uint64 { return s.errs.Load() }

// Evaluate runs every rule of s on env and appends a reason to dst for
// each rule that matches, in rule order, shadow rules included (with
// Shadow set). Pass a reused dst with spare capacity and Evaluate does not
// allocate. A rule that fails at run time counts as not matched (see the
// package comment).
func (s *Set) Evaluate(env *Env, dst []event.Reason) []event.Reason {
	var m *vm.VM
	for i := range s.rules {
		r := &s.rules[i]
		var match bool
		if r.fast != nil {
			match = r.fast(env)
		} else {
			if r.guard.off.Load() {
				continue // disabled at run time (Disabled says why)
			}
			if m == nil {
				m = s.vms.Get().(*vm.VM)
			}
			match = s.runGuarded(m, r, env)
		}
		if match {
			dst = append(dst, r.reason)
		}
	}
	if m != nil {
		s.vms.Put(m)
	}
	return dst
}

func (s *Set) run(m *vm.VM, r *compiled, env *Env) bool {
	out, err := m.Run(r.prog, env)
	if err != nil {
		if isBudgetError(err) {
			s.disable(r, "exceeded the evaluator's memory budget: "+compileDetail(err))
		}
		s.errs.Add(1)
		if s.hook != nil {
			s.hook(r.id, err)
		}
		return false
	}
	b, _ := out.(bool)
	return b
}

// Combine returns the score of a transaction from the model probability
// pModel and the reasons of its matching rules:
//
//	score = 1 − (1 − pModel) · ∏ (1 − w)
//
// over the active rule reasons only. Rules are taken as independent
// evidence: each one removes its weight's share of the remaining doubt.
// Shadow rules and model reasons (which explain pModel, already counted)
// are ignored. Probabilities and weights outside [0, 1], and NaN, are
// clamped, so the score is always in [0, 1].
func Combine(pModel float64, reasons []event.Reason) float64 {
	doubt := 1 - clamp01(pModel)
	for i := range reasons {
		r := &reasons[i]
		if r.Source != event.SourceRule || r.Shadow {
			continue
		}
		doubt *= 1 - clamp01(r.Weight)
	}
	return clamp01(1 - doubt)
}

func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x >= 0:
		return x
	}
	return 0 // negative or NaN
}
