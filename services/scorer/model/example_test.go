package model_test

import (
	"fmt"
	"strings"

	"github.com/fraudstream/fraudstream/services/scorer/model"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

func ExampleLoad() {
	m, err := model.Load(strings.NewReader(`{
		"version": "example",
		"intercept": -4,
		"features": [
			{"name": "small_count_10m", "transforms": [{"op": "log1p"}], "weight": 1.2},
			{"name": "new_country", "weight": 0.9}
		]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	env := rules.Env{SmallCount10m: 12, NewCountry: true}
	p, reasons := m.Score(&env, nil)
	fmt.Printf("p = %.3f\n", p)
	for _, r := range reasons {
		fmt.Printf("%s %.2f\n", r.Code, r.Weight)
	}
	// Output:
	// p = 0.494
	// MODEL_SMALL_COUNT_10M 3.08
	// MODEL_NEW_COUNTRY 0.90
}

func ExampleFit() {
	// In fraudstream train, examples come from replaying labeled
	// transactions through the scorer's feature code and rules.NewEnv.
	var examples []model.Example
	for i := range 400 {
		env := rules.Env{Count1m: i % 7, NewCountry: i%5 == 0}
		examples = append(examples, model.Example{Env: env, Label: env.Count1m >= 5 && (i%3 != 0 || env.NewCountry)})
	}
	m, err := model.Fit(examples, []model.Feature{{Name: "count_1m"}, {Name: "new_country"}}, model.WithVersion("example-fit"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range m.Features() {
		fmt.Printf("%s weight > 0: %v\n", f.Name, f.Weight > 0)
	}
	// Output:
	// count_1m weight > 0: true
	// new_country weight > 0: true
}
