package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestProfileValidate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	valid := `{"home_country":"DE","home_lat":52.52,"home_lon":13.405,"account_opened":"2019-04-01","risk_tier":1}`
	with := func(old, new string) string { return strings.Replace(valid, old, new, 1) }
	tests := []struct {
		name    string
		body    string
		pointer string // "" means valid
	}{
		{"valid", valid, ""},
		{"valid without location", `{"home_country":"US","account_opened":"2026-03-01","risk_tier":0}`, ""},
		{"valid with schema and card", `{"schema":"fraudstream.profile.v1","card_id":"c-1","home_country":"US","account_opened":"2000-01-01","risk_tier":3}`, ""},
		{"country missing", with(`"home_country":"DE",`, ""), "/home_country"},
		{"country unknown", with(`"DE"`, `"XX"`), "/home_country"},
		{"country lower case", with(`"DE"`, `"de"`), "/home_country"},
		{"country as number", with(`"DE"`, `49`), "/home_country"},
		{"lat without lon", with(`,"home_lon":13.405`, ""), "/home_lon"},
		{"lon without lat", with(`"home_lat":52.52,`, ""), "/home_lat"},
		{"lat out of range", with(`52.52`, `90.1`), "/home_lat"},
		{"lon out of range", with(`13.405`, `-180.5`), "/home_lon"},
		{"lat as string", with(`52.52`, `"52.52"`), "/home_lat"},
		{"opened missing", with(`"account_opened":"2019-04-01",`, ""), "/account_opened"},
		{"opened not a date", with(`"2019-04-01"`, `"01/04/2019"`), "/account_opened"},
		{"opened a timestamp", with(`"2019-04-01"`, `"2019-04-01T00:00:00Z"`), "/account_opened"},
		{"opened impossible date", with(`"2019-04-01"`, `"2019-02-30"`), "/account_opened"},
		{"opened in the future", with(`"2019-04-01"`, `"2026-03-02"`), "/account_opened"},
		{"opened before 1900", with(`"2019-04-01"`, `"1899-12-31"`), "/account_opened"},
		{"tier missing", with(`,"risk_tier":1`, ""), "/risk_tier"},
		{"tier negative", with(`"risk_tier":1`, `"risk_tier":-1`), "/risk_tier"},
		{"tier too high", with(`"risk_tier":1`, `"risk_tier":4`), "/risk_tier"},
		{"tier fractional", with(`"risk_tier":1`, `"risk_tier":1.5`), "/risk_tier"},
		{"tier as string", with(`"risk_tier":1`, `"risk_tier":"1"`), "/risk_tier"},
		{"card id bad charset", with(`{`, `{"card_id":"a b",`), "/card_id"},
		{"wrong schema", with(`{`, `{"schema":"fraudstream.profile.v9",`), "/schema"},
		{"unknown field", with(`{`, `{"email":"x@example.com",`), "/email"},
		{"updated_at not a time", with(`{`, `{"updated_at":"yesterday",`), "/updated_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeProfile([]byte(tt.body))
			if err == nil {
				err = p.Validate(now)
			}
			if tt.pointer == "" {
				if err != nil {
					t.Fatalf("valid profile refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			for _, fe := range ve.Errors {
				if fe.Pointer == tt.pointer && fe.Detail != "" {
					return
				}
			}
			t.Errorf("errors %+v lack pointer %s", ve.Errors, tt.pointer)
		})
	}
}

func TestProfileMalformed(t *testing.T) {
	for _, b := range []string{``, `{`, `{"home_country":"DE"} {}`, `nul`} {
		if _, err := DecodeProfile([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeProfile(%q) = %v, want ErrMalformed", b, err)
		}
	}
}

func TestProfileRoundTrip(t *testing.T) {
	tier := 2
	lat, lon := -33.87, 151.21
	p := Profile{CardID: "card-1", HomeCountry: "AU", HomeLat: &lat, HomeLon: &lon, AccountOpened: "2020-02-29",
		RiskTier: &tier, UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":"fraudstream.profile.v1","card_id":"card-1","home_country":"AU","home_lat":-33.87,"home_lon":151.21,"account_opened":"2020-02-29","risk_tier":2,"updated_at":"2026-01-02T03:04:05Z"}`
	if string(b) != want {
		t.Fatalf("Encode\n got %s\nwant %s", b, want)
	}
	q, err := DecodeProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if d, ok := q.Opened(); !ok || d != time.Date(2020, 2, 29, 0, 0, 0, 0, time.UTC) || q.Tier() != 2 {
		t.Errorf("decoded %+v opened %v", q, d)
	}
	if (Profile{}).Tier() != 0 {
		t.Error("Tier of an empty profile")
	}
}

func ExampleProfileKey() {
	fmt.Println(ProfileKey("card-42"))
	// Output: profile:card-42
}
