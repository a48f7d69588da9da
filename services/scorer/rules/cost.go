package rules

import (
	"fmt"
	"math"
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// This file bounds the cost of a rule before it is accepted: an abstract
// interpretation of the type-checked syntax tree that computes, for every
// sub-expression, an upper bound on the work to evaluate it (steps) and on
// the size of its value (bytes of a string, weight of a collection). A
// rule is refused when a bound cannot be given (a range over a feature,
// an unknown builtin) or exceeds Limits. See docs/design/rule-cost.md.
//
// Invariant: for every accepted rule and every Env, evaluation performs at
// most staticCost.steps abstract operations and builds no value larger
// than Limits.MaxValueSize; the VM's memory budget and the scorer's
// run-time guard are backstops for a mistake in this model, not the bound.

// maxEnvString bounds the strings of Env: currency (3), merchant_category
// (4), merchant_country (2) and channel (at most 12) are validated by
// event.Transaction.Validate before a transaction is scored.
const maxEnvString = 16

// envWeight bounds the weight of $env: every variable, strings included.
var envWeight = int64(len(variables) * maxEnvString)

// bound is what the analysis knows of a sub-expression.
type bound struct {
	steps int64 // operations to evaluate it, children included
	size  int64 // weight of its value: 1 for a scalar, bytes of a string, sum over a collection
	elem  int64 // largest weight of one element, for collections and strings
}

// costError is a rule whose cost cannot be bounded or exceeds a limit.
type costError struct {
	msg string
	loc ast.Node
}

func (e *costError) Error() string {
	if e.loc != nil {
		if l := e.loc.Location(); l.From > 0 || l.To > 0 {
			return fmt.Sprintf("%s (at character %d)", e.msg, l.From+1)
		}
	}
	return e.msg
}

// analyzer walks one rule.
type analyzer struct {
	lim   Limits
	vars  map[string]bound // let variables in scope
	elem  []bound          // # of the enclosing closures, innermost last
	acc   []bound          // #acc of the enclosing reduce calls
	steps int64            // total work of the analysis, to stop it early
}

// saturating arithmetic: bounds never wrap, they only exceed limits.
const inf = math.MaxInt64 / 4

func add(a, b int64) int64 {
	if a >= inf-b {
		return inf
	}
	return a + b
}

func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a >= inf/b {
		return inf
	}
	return a * b
}

func scalar(steps int64) bound { return bound{steps: steps, size: 1, elem: 1} }

// staticCost returns the bound of the rule rooted at n, or a *costError.
func staticCost(n ast.Node, lim Limits) (bound, error) {
	a := &analyzer{lim: lim, vars: map[string]bound{}}
	b, err := a.node(n)
	if err != nil {
		return bound{}, err
	}
	return b, nil
}

func (a *analyzer) fail(n ast.Node, format string, args ...any) error {
	return &costError{msg: fmt.Sprintf(format, args...), loc: n}
}

// check refuses a sub-expression over a limit as soon as it is seen, so
// the analysis of a runaway expression stops early too.
func (a *analyzer) check(n ast.Node, b bound) (bound, error) {
	if b.size > a.lim.MaxValueSize {
		return b, a.fail(n, "it may build a value of more than %d bytes per transaction", a.lim.MaxValueSize)
	}
	if b.steps > a.lim.MaxSteps {
		return b, a.fail(n, "its cost has no bound within %d steps per transaction", a.lim.MaxSteps)
	}
	a.steps++
	if a.steps > a.lim.MaxSteps {
		return b, a.fail(n, "its cost has no bound within %d steps per transaction", a.lim.MaxSteps)
	}
	return b, nil
}

func (a *analyzer) node(n ast.Node) (bound, error) {
	b, err := a.eval(n)
	if err != nil {
		return b, err
	}
	return a.check(n, b)
}

func (a *analyzer) eval(n ast.Node) (bound, error) {
	switch n := n.(type) {
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return scalar(1), nil
	case *ast.StringNode:
		return bound{steps: 1, size: max(int64(len(n.Value)), 1), elem: 4}, nil
	case *ast.BytesNode:
		return bound{steps: 1, size: max(int64(len(n.Value)), 1), elem: 1}, nil
	case *ast.ConstantNode:
		return constantBound(n.Value), nil
	case *ast.IdentifierNode:
		if b, ok := a.vars[n.Value]; ok {
			return bound{steps: 1, size: b.size, elem: b.elem}, nil
		}
		if n.Value == "$env" {
			return bound{steps: 1, size: envWeight, elem: maxEnvString}, nil
		}
		if v, ok := lookupVariable(n.Value); ok {
			if v.kind == kindString {
				return bound{steps: 1, size: maxEnvString, elem: 4}, nil
			}
			return scalar(1), nil
		}
		return bound{}, a.fail(n, "unknown name %q", n.Value)
	case *ast.PointerNode:
		switch n.Name {
		case "acc":
			if len(a.acc) == 0 {
				return bound{}, a.fail(n, "#acc outside reduce")
			}
			b := a.acc[len(a.acc)-1]
			return bound{steps: 1, size: b.size, elem: b.elem}, nil
		case "index":
			return scalar(1), nil
		}
		if len(a.elem) == 0 {
			return bound{}, a.fail(n, "# outside a closure")
		}
		e := a.elem[len(a.elem)-1]
		return bound{steps: 1, size: e.size, elem: e.elem}, nil
	case *ast.UnaryNode:
		x, err := a.node(n.Node)
		if err != nil {
			return x, err
		}
		return scalar(add(x.steps, 1)), nil
	case *ast.BinaryNode:
		return a.binary(n)
	case *ast.ChainNode:
		return a.node(n.Node)
	case *ast.MemberNode:
		x, err := a.node(n.Node)
		if err != nil {
			return x, err
		}
		p, err := a.node(n.Property)
		if err != nil {
			return p, err
		}
		// Indexing a collection or $env: O(1) (maps hash the key) and at
		// most one element.
		return bound{steps: add(add(x.steps, p.steps), p.size), size: x.elem, elem: x.elem}, nil
	case *ast.SliceNode:
		x, err := a.node(n.Node)
		if err != nil {
			return x, err
		}
		steps := x.steps
		for _, c := range []ast.Node{n.From, n.To} {
			if c == nil {
				continue
			}
			cb, err := a.node(c)
			if err != nil {
				return cb, err
			}
			steps = add(steps, cb.steps)
		}
		return bound{steps: add(steps, x.size), size: x.size, elem: x.elem}, nil
	case *ast.ConditionalNode:
		c, err := a.node(n.Cond)
		if err != nil {
			return c, err
		}
		x, err := a.node(n.Exp1)
		if err != nil {
			return x, err
		}
		y, err := a.node(n.Exp2)
		if err != nil {
			return y, err
		}
		return bound{steps: add(c.steps, max(x.steps, y.steps)), size: max(x.size, y.size), elem: max(x.elem, y.elem)}, nil
	case *ast.VariableDeclaratorNode:
		v, err := a.node(n.Value)
		if err != nil {
			return v, err
		}
		prev, shadowed := a.vars[n.Name]
		a.vars[n.Name] = v
		e, err := a.node(n.Expr)
		if shadowed {
			a.vars[n.Name] = prev
		} else {
			delete(a.vars, n.Name)
		}
		if err != nil {
			return e, err
		}
		return bound{steps: add(v.steps, e.steps), size: e.size, elem: e.elem}, nil
	case *ast.SequenceNode:
		var out bound
		steps := int64(0)
		for _, c := range n.Nodes {
			b, err := a.node(c)
			if err != nil {
				return b, err
			}
			steps, out = add(steps, b.steps), b
		}
		out.steps = steps
		return out, nil
	case *ast.ArrayNode:
		out := bound{steps: 1}
		for _, c := range n.Nodes {
			b, err := a.node(c)
			if err != nil {
				return b, err
			}
			out.steps = add(out.steps, b.steps)
			out.size = add(out.size, b.size)
			out.elem = max(out.elem, b.size)
		}
		out.size = max(out.size, 1)
		return out, nil
	case *ast.MapNode:
		out := bound{steps: 1}
		for _, c := range n.Pairs {
			b, err := a.node(c)
			if err != nil {
				return b, err
			}
			out.steps = add(out.steps, b.steps)
			out.size = add(out.size, b.size)
			out.elem = max(out.elem, b.elem)
		}
		out.size = max(out.size, 1)
		return out, nil
	case *ast.PairNode:
		k, err := a.node(n.Key)
		if err != nil {
			return k, err
		}
		v, err := a.node(n.Value)
		if err != nil {
			return v, err
		}
		return bound{steps: add(k.steps, v.steps), size: add(k.size, v.size), elem: v.size}, nil
	case *ast.BuiltinNode:
		return a.builtin(n)
	case *ast.PredicateNode:
		return bound{}, a.fail(n, "a closure outside a builtin such as all or filter")
	}
	return bound{}, a.fail(n, "%T is not allowed in a rule", n)
}

// constantBound is the bound of a value the optimizer folded (rules are
// compiled without it, so this is only a safe fallback).
func constantBound(v any) bound {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return bound{steps: 1, size: max(int64(rv.Len()), 1), elem: 4}
	case reflect.Slice, reflect.Array, reflect.Map:
		// Elements of a folded constant are literals: at most a few
		// bytes each is not guaranteed, so count each as the whole.
		n := max(int64(rv.Len()), 1)
		return bound{steps: 1, size: mul(n, 64), elem: 64}
	}
	return scalar(1)
}

// constInt is the value of an integer literal, possibly negated.
func constInt(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.UnaryNode:
		if v, ok := constInt(n.Node); ok {
			switch n.Operator {
			case "-":
				return -v, true
			case "+":
				return v, true
			}
		}
	}
	return 0, false
}

func (a *analyzer) binary(n *ast.BinaryNode) (bound, error) {
	if n.Operator == ".." {
		lo, okl := constInt(n.Left)
		hi, okh := constInt(n.Right)
		if !okl || !okh {
			return bound{}, a.fail(n, "a range needs constant integer bounds: one over a feature has no bound")
		}
		size := max(int64(hi)-int64(lo)+1, 0)
		return bound{steps: add(size, 1), size: max(size, 1), elem: 1}, nil
	}
	l, err := a.node(n.Left)
	if err != nil {
		return l, err
	}
	r, err := a.node(n.Right)
	if err != nil {
		return r, err
	}
	steps := add(add(l.steps, r.steps), 1)
	switch n.Operator {
	case "+":
		// Numbers, or concatenated strings or arrays: the sizes add.
		return bound{steps: add(steps, add(l.size, r.size)), size: add(l.size, r.size), elem: max(l.elem, r.elem)}, nil
	case "==", "!=", "<", ">", "<=", ">=", "contains", "startsWith", "endsWith", "in", "??":
		// Linear in the operands (a comparison of strings or arrays, a
		// search in a list; "??" returns one of them).
		b := bound{steps: add(steps, add(l.size, r.size)), size: 1, elem: 1}
		if n.Operator == "??" {
			b.size, b.elem = max(l.size, r.size), max(l.elem, r.elem)
		}
		return b, nil
	case "matches":
		// A pattern that is not a literal is compiled for every
		// evaluation; RE2 matching is linear in text × pattern.
		return scalar(add(steps, mul(add(l.size, 1), add(r.size, 1)))), nil
	case "&&", "and", "||", "or", "-", "*", "/", "%", "**", "^":
		return scalar(steps), nil
	}
	return bound{}, a.fail(n, "operator %q is not allowed in a rule", n.Operator)
}

// closure runs the analysis of a builtin's predicate over the elements of
// coll, returning the bound of one evaluation of its body.
func (a *analyzer) closure(p ast.Node, coll bound) (bound, error) {
	pn, ok := p.(*ast.PredicateNode)
	if !ok {
		return bound{}, a.fail(p, "expected a closure")
	}
	a.elem = append(a.elem, bound{size: max(coll.elem, 1), elem: max(coll.elem, 1)})
	defer func() { a.elem = a.elem[:len(a.elem)-1] }()
	return a.node(pn.Node)
}

// iterations bounds how many elements a collection of weight size has:
// every element weighs at least 1.
func iterations(coll bound) int64 { return max(coll.size, 1) }

func (a *analyzer) builtin(n *ast.BuiltinNode) (bound, error) {
	switch n.Name {
	case "all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex",
		"count", "sum", "groupBy", "sortBy", "reduce":
		return a.predicate(n)
	}
	args := make([]bound, len(n.Arguments))
	steps := int64(1)
	sizes := int64(0)
	for i, c := range n.Arguments {
		b, err := a.node(c)
		if err != nil {
			return b, err
		}
		args[i] = b
		steps = add(steps, b.steps)
		sizes = add(sizes, b.size)
	}
	arg := func(i int) bound {
		if i < len(args) {
			return args[i]
		}
		return scalar(0)
	}
	switch n.Name {
	case "len", "abs", "ceil", "floor", "round", "int", "float", "duration",
		"bitnot", "bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr", "bitushr":
		return scalar(steps), nil
	case "type":
		return bound{steps: steps, size: 16, elem: 4}, nil
	case "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix", "mean", "median":
		return scalar(add(steps, sizes)), nil
	case "max", "min":
		return bound{steps: add(steps, sizes), size: maxElem(args), elem: maxElem(args)}, nil
	case "string":
		size := add(mul(arg(0).size, 24), 2) // a number prints in at most 24 bytes
		return bound{steps: add(steps, size), size: size, elem: 4}, nil
	case "trim", "trimPrefix", "trimSuffix", "upper", "lower":
		size := mul(arg(0).size, 2) // case mapping may grow a rune's bytes
		return bound{steps: add(steps, size), size: size, elem: 4}, nil
	case "split", "splitAfter":
		s := arg(0).size
		size := add(mul(s, 2), 1)
		return bound{steps: add(steps, add(size, sizes)), size: size, elem: s}, nil
	case "replace":
		s, nw := arg(0).size, arg(2).size
		size := add(mul(add(s, 1), add(nw, 1)), s)
		return bound{steps: add(steps, size), size: size, elem: 4}, nil
	case "repeat":
		k, ok := constInt(n.Arguments[1])
		if !ok {
			return bound{}, a.fail(n, "repeat needs a constant count")
		}
		size := mul(arg(0).size, max(int64(k), 0))
		return bound{steps: add(steps, size), size: max(size, 1), elem: 4}, nil
	case "join":
		c := arg(0)
		size := add(c.size, mul(iterations(c), arg(1).size))
		return bound{steps: add(steps, size), size: size, elem: 4}, nil
	case "toJSON":
		size := add(mul(arg(0).size, 8), 16) // escapes and punctuation
		return bound{steps: add(steps, size), size: size, elem: 4}, nil
	case "fromJSON", "toBase64", "fromBase64":
		size := add(mul(arg(0).size, 2), 4)
		return bound{steps: add(steps, size), size: size, elem: size}, nil
	case "first", "last", "get":
		return bound{steps: steps, size: arg(0).elem, elem: arg(0).elem}, nil
	case "take", "reverse", "uniq", "keys", "values", "toPairs", "fromPairs", "flatten":
		c := arg(0)
		size := mul(c.size, 2)
		return bound{steps: add(steps, size), size: size, elem: c.size}, nil
	case "concat":
		return bound{steps: add(steps, sizes), size: max(sizes, 1), elem: maxElem(args)}, nil
	case "sort":
		c := arg(0)
		return bound{steps: add(steps, mul(c.size, 64)), size: c.size, elem: c.elem}, nil
	}
	return bound{}, a.fail(n, "builtin %s is not allowed in a rule", n.Name)
}

// maxElem bounds one element of any of args (for min, max and concat,
// which return an element or join the elements of their arguments).
func maxElem(args []bound) int64 {
	m := int64(1)
	for _, b := range args {
		m = max(m, b.elem)
	}
	return m
}

// predicate bounds a builtin with a closure: the collection once, the
// body once per element. reduce is followed step by step, since its
// accumulator may grow with every element (#acc + #acc doubles it).
func (a *analyzer) predicate(n *ast.BuiltinNode) (bound, error) {
	if len(n.Arguments) == 0 {
		return bound{}, a.fail(n, "%s without arguments", n.Name)
	}
	coll, err := a.node(n.Arguments[0])
	if err != nil {
		return coll, err
	}
	iters := iterations(coll)
	if len(n.Arguments) == 1 { // count(list), sum(list)
		return scalar(add(coll.steps, iters)), nil
	}
	if n.Name == "reduce" {
		return a.reduce(n, coll, iters)
	}
	body, err := a.closure(n.Arguments[1], coll)
	if err != nil {
		return body, err
	}
	steps := add(coll.steps, mul(iters, add(body.steps, 1)))
	for _, c := range n.Arguments[2:] { // sortBy's order
		b, err := a.node(c)
		if err != nil {
			return b, err
		}
		steps = add(steps, b.steps)
	}
	var out bound
	switch n.Name {
	case "filter":
		out = bound{size: coll.size, elem: coll.elem}
	case "map":
		out = bound{size: max(mul(iters, body.size), 1), elem: body.size}
	case "find", "findLast":
		out = bound{size: max(coll.elem, 1), elem: max(coll.elem, 1)}
	case "groupBy":
		out = bound{size: add(mul(coll.size, 2), mul(iters, body.size)), elem: coll.size}
	case "sortBy":
		steps = add(steps, mul(iters, 64))
		out = bound{size: coll.size, elem: coll.elem}
	default: // all, none, any, one, count, sum, findIndex, findLastIndex
		out = bound{size: 1, elem: 1}
	}
	out.steps = steps
	return out, nil
}

func (a *analyzer) reduce(n *ast.BuiltinNode, coll bound, iters int64) (bound, error) {
	acc := bound{size: max(coll.elem, 1), elem: max(coll.elem, 1)}
	steps := coll.steps
	if len(n.Arguments) > 2 {
		init, err := a.node(n.Arguments[2])
		if err != nil {
			return init, err
		}
		steps = add(steps, init.steps)
		acc = bound{size: max(init.size, coll.elem, 1), elem: max(init.elem, coll.elem, 1)}
	}
	growing := func(i int64) error {
		return a.fail(n, "reduce's accumulator grows with every element (to %d bytes after %d of up to %d elements): "+
			"its cost has no bound within %d steps and %d bytes per transaction", acc.size, i, iters, a.lim.MaxSteps, a.lim.MaxValueSize)
	}
	for i := int64(0); i < iters; i++ {
		a.acc = append(a.acc, acc)
		body, err := a.closure(n.Arguments[1], coll)
		a.acc = a.acc[:len(a.acc)-1]
		if err != nil {
			if i > 0 {
				return bound{}, growing(i)
			}
			return body, err
		}
		if body.size <= acc.size && body.elem <= acc.elem {
			// The accumulator stopped growing: every later step costs
			// at most this one.
			steps = add(steps, mul(iters-i, add(body.steps, 1)))
			break
		}
		steps = add(steps, add(body.steps, 1))
		acc = bound{size: max(acc.size, body.size), elem: max(acc.elem, body.elem)}
		if acc.size > a.lim.MaxValueSize || steps > a.lim.MaxSteps {
			return bound{}, growing(i + 1)
		}
	}
	return bound{steps: steps, size: acc.size, elem: acc.elem}, nil
}
