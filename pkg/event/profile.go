package event

import (
	"encoding/json"
	"errors"
	"time"
)

// SchemaProfile names the card profile format.
const SchemaProfile = "fraudstream.profile.v1"

// ProfileKeyPrefix starts the Redis key of every card profile. Ingest writes
// a profile with PUT /v1/cards/{card_id}/profile and the scorer reads it to
// enrich transactions:
//
//	key:   "profile:" + card_id              (ProfileKey; no TTL)
//	value: the JSON of Profile.Encode, e.g.
//	       {"schema":"fraudstream.profile.v1","card_id":"card-42",
//	        "home_country":"DE","home_lat":52.52,"home_lon":13.405,
//	        "account_opened":"2019-04-01","risk_tier":1,
//	        "updated_at":"2026-03-01T12:00:00Z"}
//
// A reader should decode with DecodeProfileRecord, which ignores fields a
// newer writer added, and treat a missing key as "no profile" (risk tier 0, no home location).
const ProfileKeyPrefix = "profile:"

// ProfileKey returns the Redis key of the profile of cardID.
func ProfileKey(cardID string) string { return ProfileKeyPrefix + cardID }

// DateLayout is the format of Profile.AccountOpened (RFC 3339 full-date).
const DateLayout = "2006-01-02"

// MaxRiskTier is the highest risk tier; tiers run from 0 (lowest) up.
const MaxRiskTier = 3

// Profile is what the bank knows about a card before any transaction: where
// its holder lives, how old the account is and how risky the bank rates it.
// It is the body of PUT /v1/cards/{card_id}/profile (without card_id and
// updated_at, which ingest sets) and the value stored under ProfileKey.
type Profile struct {
	Schema        string   `json:"schema,omitempty"`
	CardID        string   `json:"card_id,omitempty"`
	HomeCountry   string   `json:"home_country"`
	HomeLat       *float64 `json:"home_lat,omitempty"`
	HomeLon       *float64 `json:"home_lon,omitempty"`
	AccountOpened string   `json:"account_opened"` // DateLayout, e.g. 2019-04-01
	// RiskTier is 0 (lowest) to MaxRiskTier; a pointer so that a missing
	// tier is told apart from tier 0 when decoding a client's body.
	RiskTier  *int      `json:"risk_tier"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// DecodeProfile decodes one JSON profile strictly, like DecodeTransaction:
// unknown fields, keys in another case, duplicate keys and wrong types are
// a *ValidationError, anything unparsable wraps ErrMalformed. It does not
// validate values.
func DecodeProfile(b []byte) (Profile, error) {
	return decodeProfile(b, RejectUnknown)
}

// DecodeProfileRecord decodes a profile stored under ProfileKey: as
// DecodeProfile, except that unknown fields are ignored, so that profiles
// written by a newer ingest still enrich (IgnoreUnknown).
func DecodeProfileRecord(b []byte) (Profile, error) {
	return decodeProfile(b, IgnoreUnknown)
}

func decodeProfile(b []byte, unknown Unknown) (Profile, error) {
	var p Profile
	if err := Unmarshal(b, &p, unknown); err != nil {
		// decodeJSON names every bad time /event_time; here the only
		// time field is updated_at.
		var ve *ValidationError
		if errors.As(err, &ve) {
			for i := range ve.Errors {
				if ve.Errors[i].Pointer == "/event_time" {
					ve.Errors[i].Pointer = "/updated_at"
				}
			}
		}
		return Profile{}, err
	}
	return p, nil
}

// Encode returns the JSON form of p with its schema set.
func (p Profile) Encode() ([]byte, error) {
	p.Schema = SchemaProfile
	return json.Marshal(p)
}

// Tier returns the risk tier, 0 when unset.
func (p Profile) Tier() int {
	if p.RiskTier == nil {
		return 0
	}
	return *p.RiskTier
}

// Opened returns AccountOpened as a date at midnight UTC; ok is false when
// it is absent or malformed.
func (p Profile) Opened() (t time.Time, ok bool) {
	t, err := time.Parse(DateLayout, p.AccountOpened)
	return t, err == nil
}

// Validate checks every field of p and reports all problems at once. An
// account cannot have been opened after now (nor before 1900); a zero now
// skips the future check.
func (p *Profile) Validate(now time.Time) error {
	ve := &ValidationError{}
	checkSchema(ve, p.Schema, SchemaProfile)
	checkID(ve, "/card_id", p.CardID, false)
	if _, ok := countries[p.HomeCountry]; !ok {
		ve.add("/home_country", "must be an ISO 3166-1 alpha-2 country code such as US, got %q", p.HomeCountry)
	}
	switch {
	case (p.HomeLat == nil) != (p.HomeLon == nil):
		if p.HomeLat == nil {
			ve.add("/home_lat", "is required when home_lon is given")
		} else {
			ve.add("/home_lon", "is required when home_lat is given")
		}
	case p.HomeLat != nil:
		if !(*p.HomeLat >= -90 && *p.HomeLat <= 90) {
			ve.add("/home_lat", "must be between -90 and 90 degrees")
		}
		if !(*p.HomeLon >= -180 && *p.HomeLon <= 180) {
			ve.add("/home_lon", "must be between -180 and 180 degrees")
		}
	}
	if p.AccountOpened == "" {
		ve.add("/account_opened", "is required (a date such as 2019-04-01)")
	} else if d, ok := p.Opened(); !ok {
		ve.add("/account_opened", "must be a date such as 2019-04-01, got %q", p.AccountOpened)
	} else if d.Year() < 1900 {
		ve.add("/account_opened", "must not be before 1900")
	} else if !now.IsZero() && d.After(now.UTC()) {
		ve.add("/account_opened", "must not be in the future")
	}
	switch {
	case p.RiskTier == nil:
		ve.add("/risk_tier", "is required (an integer from 0 to %d)", MaxRiskTier)
	case *p.RiskTier < 0 || *p.RiskTier > MaxRiskTier:
		ve.add("/risk_tier", "must be an integer from 0 to %d, got %d", MaxRiskTier, *p.RiskTier)
	}
	return ve.err()
}
