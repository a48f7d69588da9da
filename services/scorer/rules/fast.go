package rules

import (
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// This file lowers a type-checked expr syntax tree into a tree of typed Go
// closures over *Env. expr's virtual machine reads struct fields through
// reflection and boxes every int and float it loads into an interface, an
// allocation each; the closures read fields directly and keep values
// unboxed, so a rule costs a few nanoseconds and nothing on the heap.
//
// Only the part of the language whose evaluation cannot fail is lowered:
// variables, literals, !, unary -, &&, ||, comparisons, + - * / ** on
// numbers, "in" over a literal list, string contains/startsWith/endsWith
// and the ternary operator on booleans. The semantics follow expr's
// runtime exactly (int op int stays int and wraps like Go, any float makes
// the operation float, "/" is always float division); a differential test
// runs both on random environments. A rule using anything else (%, which
// can divide by zero; builtins; member access; …) keeps running on expr's
// VM, so the language is never restricted, only the fast path.

// value is a lowered sub-expression: exactly one of the functions matches
// k and is set.
type value struct {
	k kind
	i func(*Env) int
	f func(*Env) float64
	b func(*Env) bool
	s func(*Env) string
}

// lowerBool lowers the root of a rule, which the checker has proven to be
// a boolean. ok is false when some part is outside the fast subset.
func lowerBool(n ast.Node) (func(*Env) bool, bool) {
	v, ok := lower(n)
	if !ok || v.k != kindBool {
		return nil, false
	}
	return v.b, true
}

func kindOf(t reflect.Type) kind {
	if t == nil {
		return kindInvalid
	}
	switch t.Kind() {
	case reflect.Int:
		return kindInt
	case reflect.Float64:
		return kindFloat
	case reflect.Bool:
		return kindBool
	case reflect.String:
		return kindString
	}
	return kindInvalid
}

func lower(n ast.Node) (value, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		v, ok := lookupVariable(n.Value)
		if !ok || kindOf(n.Type()) != v.kind {
			return value{}, false
		}
		return value{k: v.kind, i: v.i, f: v.f, b: v.b, s: v.s}, true
	case *ast.IntegerNode:
		c := n.Value
		return value{k: kindInt, i: func(*Env) int { return c }}, true
	case *ast.FloatNode:
		c := n.Value
		return value{k: kindFloat, f: func(*Env) float64 { return c }}, true
	case *ast.BoolNode:
		c := n.Value
		return value{k: kindBool, b: func(*Env) bool { return c }}, true
	case *ast.StringNode:
		c := n.Value
		return value{k: kindString, s: func(*Env) string { return c }}, true
	case *ast.UnaryNode:
		return lowerUnary(n)
	case *ast.BinaryNode:
		return lowerBinary(n)
	case *ast.ConditionalNode:
		c, okc := lower(n.Cond)
		a, oka := lower(n.Exp1)
		b, okb := lower(n.Exp2)
		if !okc || !oka || !okb || c.k != kindBool || a.k != kindBool || b.k != kindBool {
			return value{}, false
		}
		cb, ab, bb := c.b, a.b, b.b
		return value{k: kindBool, b: func(e *Env) bool {
			if cb(e) {
				return ab(e)
			}
			return bb(e)
		}}, true
	}
	return value{}, false
}

func lowerUnary(n *ast.UnaryNode) (value, bool) {
	x, ok := lower(n.Node)
	if !ok {
		return value{}, false
	}
	switch {
	case (n.Operator == "!" || n.Operator == "not") && x.k == kindBool:
		b := x.b
		return value{k: kindBool, b: func(e *Env) bool { return !b(e) }}, true
	case n.Operator == "-" && x.k == kindInt:
		i := x.i
		return value{k: kindInt, i: func(e *Env) int { return -i(e) }}, true
	case n.Operator == "-" && x.k == kindFloat:
		f := x.f
		return value{k: kindFloat, f: func(e *Env) float64 { return -f(e) }}, true
	case n.Operator == "+" && (x.k == kindInt || x.k == kindFloat):
		return x, true
	}
	return value{}, false
}

func numeric(k kind) bool { return k == kindInt || k == kindFloat }

// asFloat widens an int or float value to float64, as expr's runtime does
// whenever one operand is a float.
func asFloat(v value) func(*Env) float64 {
	if v.k == kindFloat {
		return v.f
	}
	i := v.i
	return func(e *Env) float64 { return float64(i(e)) }
}

func lowerBinary(n *ast.BinaryNode) (value, bool) {
	if n.Operator == "in" {
		return lowerIn(n)
	}
	l, okl := lower(n.Left)
	r, okr := lower(n.Right)
	if !okl || !okr {
		return value{}, false
	}
	switch n.Operator {
	case "&&", "and", "||", "or":
		if l.k != kindBool || r.k != kindBool {
			return value{}, false
		}
		a, b := l.b, r.b
		if n.Operator == "&&" || n.Operator == "and" {
			return value{k: kindBool, b: func(e *Env) bool { return a(e) && b(e) }}, true
		}
		return value{k: kindBool, b: func(e *Env) bool { return a(e) || b(e) }}, true
	case "==", "!=":
		eq, ok := lowerEqual(l, r)
		if !ok {
			return value{}, false
		}
		if n.Operator == "!=" {
			return value{k: kindBool, b: func(e *Env) bool { return !eq(e) }}, true
		}
		return value{k: kindBool, b: eq}, true
	case "<", ">", "<=", ">=":
		return lowerCompare(n.Operator, l, r)
	case "+", "-", "*":
		return lowerArith(n.Operator, l, r)
	case "/":
		if !numeric(l.k) || !numeric(r.k) {
			return value{}, false
		}
		a, b := asFloat(l), asFloat(r)
		return value{k: kindFloat, f: func(e *Env) float64 { return a(e) / b(e) }}, true
	case "**", "^":
		if !numeric(l.k) || !numeric(r.k) {
			return value{}, false
		}
		a, b := asFloat(l), asFloat(r)
		return value{k: kindFloat, f: func(e *Env) float64 { return math.Pow(a(e), b(e)) }}, true
	case "contains", "startsWith", "endsWith":
		if l.k != kindString || r.k != kindString {
			return value{}, false
		}
		a, b := l.s, r.s
		var op func(string, string) bool
		switch n.Operator {
		case "contains":
			op = strings.Contains
		case "startsWith":
			op = strings.HasPrefix
		default:
			op = strings.HasSuffix
		}
		return value{k: kindBool, b: func(e *Env) bool { return op(a(e), b(e)) }}, true
	}
	return value{}, false
}

func lowerEqual(l, r value) (func(*Env) bool, bool) {
	switch {
	case l.k == kindInt && r.k == kindInt:
		a, b := l.i, r.i
		return func(e *Env) bool { return a(e) == b(e) }, true
	case numeric(l.k) && numeric(r.k):
		a, b := asFloat(l), asFloat(r)
		return func(e *Env) bool { return a(e) == b(e) }, true
	case l.k == kindString && r.k == kindString:
		a, b := l.s, r.s
		return func(e *Env) bool { return a(e) == b(e) }, true
	case l.k == kindBool && r.k == kindBool:
		a, b := l.b, r.b
		return func(e *Env) bool { return a(e) == b(e) }, true
	}
	return nil, false
}

func lowerCompare(op string, l, r value) (value, bool) {
	switch {
	case l.k == kindInt && r.k == kindInt:
		a, b := l.i, r.i
		var f func(*Env) bool
		switch op {
		case "<":
			f = func(e *Env) bool { return a(e) < b(e) }
		case ">":
			f = func(e *Env) bool { return a(e) > b(e) }
		case "<=":
			f = func(e *Env) bool { return a(e) <= b(e) }
		default:
			f = func(e *Env) bool { return a(e) >= b(e) }
		}
		return value{k: kindBool, b: f}, true
	case numeric(l.k) && numeric(r.k):
		a, b := asFloat(l), asFloat(r)
		var f func(*Env) bool
		switch op {
		case "<":
			f = func(e *Env) bool { return a(e) < b(e) }
		case ">":
			f = func(e *Env) bool { return a(e) > b(e) }
		case "<=":
			f = func(e *Env) bool { return a(e) <= b(e) }
		default:
			f = func(e *Env) bool { return a(e) >= b(e) }
		}
		return value{k: kindBool, b: f}, true
	case l.k == kindString && r.k == kindString:
		a, b := l.s, r.s
		var f func(*Env) bool
		switch op {
		case "<":
			f = func(e *Env) bool { return a(e) < b(e) }
		case ">":
			f = func(e *Env) bool { return a(e) > b(e) }
		case "<=":
			f = func(e *Env) bool { return a(e) <= b(e) }
		default:
			f = func(e *Env) bool { return a(e) >= b(e) }
		}
		return value{k: kindBool, b: f}, true
	}
	return value{}, false
}

func lowerArith(op string, l, r value) (value, bool) {
	switch {
	case l.k == kindInt && r.k == kindInt:
		a, b := l.i, r.i
		var f func(*Env) int
		switch op {
		case "+":
			f = func(e *Env) int { return a(e) + b(e) }
		case "-":
			f = func(e *Env) int { return a(e) - b(e) }
		default:
			f = func(e *Env) int { return a(e) * b(e) }
		}
		return value{k: kindInt, i: f}, true
	case numeric(l.k) && numeric(r.k):
		a, b := asFloat(l), asFloat(r)
		var f func(*Env) float64
		switch op {
		case "+":
			f = func(e *Env) float64 { return a(e) + b(e) }
		case "-":
			f = func(e *Env) float64 { return a(e) - b(e) }
		default:
			f = func(e *Env) float64 { return a(e) * b(e) }
		}
		return value{k: kindFloat, f: f}, true
	}
	return value{}, false
}

// lowerIn handles x in ["a", "b"] and x in [1, 2] with a literal list, the
// only form of "in" that rules need (merchant categories, countries).
func lowerIn(n *ast.BinaryNode) (value, bool) {
	arr, ok := n.Right.(*ast.ArrayNode)
	if !ok {
		return value{}, false
	}
	l, ok := lower(n.Left)
	if !ok {
		return value{}, false
	}
	switch l.k {
	case kindString:
		set := make([]string, 0, len(arr.Nodes))
		for _, el := range arr.Nodes {
			s, ok := el.(*ast.StringNode)
			if !ok {
				return value{}, false
			}
			set = append(set, s.Value)
		}
		get := l.s
		return value{k: kindBool, b: func(e *Env) bool { return slices.Contains(set, get(e)) }}, true
	case kindInt:
		set := make([]int, 0, len(arr.Nodes))
		for _, el := range arr.Nodes {
			c, ok := el.(*ast.IntegerNode)
			if !ok {
				return value{}, false
			}
			set = append(set, c.Value)
		}
		get := l.i
		return value{k: kindBool, b: func(e *Env) bool { return slices.Contains(set, get(e)) }}, true
	}
	return value{}, false
}
