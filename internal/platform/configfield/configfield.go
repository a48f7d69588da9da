// Package configfield is how a service's Config.Validate names what it
// refused: by the Config field, never by an environment variable or flag,
// which belong to cmd/fraudstream. cmd/fraudstream turns the field names
// back into the settings they were read from.
package configfield

import "fmt"

// An Error names the Config field Validate refused, such as "MaxSkew" or
// "HTTP.BodyTimeout"; other fields its message mentions are written
// "Config.Field".
type Error struct {
	Service string // "ingest", "scorer", "alerts"
	Field   string
	Err     error
}

func (e *Error) Error() string { return e.Service + ": Config." + e.Field + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ConfigField is the name of the refused field.
func (e *Error) ConfigField() string { return e.Field }

// New is an Error for field with a formatted message.
func New(service, field, msg string, args ...any) error {
	return &Error{Service: service, Field: field, Err: fmt.Errorf(msg, args...)}
}
