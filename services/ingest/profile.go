package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Card profiles are stored in Redis under event.ProfileKey(card_id)
// ("profile:{card_id}") as the JSON of event.Profile, with card_id and
// updated_at filled in by ingest and no TTL; the scorer reads them from
// there. Unlike idempotency and rate limits, profile routes cannot fail
// open: without Redis they answer 503.

// handlePutProfile serves PUT /v1/cards/{card_id}/profile: it replaces the
// card's profile and answers 200 with the stored profile.
func (s *Service) handlePutProfile(w http.ResponseWriter, r *http.Request) {
	cardID := chi.URLParam(r, "card_id")
	if _, e := mediaType(r, mediaJSON); e != nil {
		s.fail(w, r, e)
		return
	}
	body, e := readBody(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		s.fail(w, r, e)
		return
	}
	now := s.now()
	p, err := event.DecodeProfile(body)
	if err == nil {
		err = p.Validate(now)
	}
	var ve *event.ValidationError
	if err != nil && !errors.As(err, &ve) {
		s.fail(w, r, classify(err))
		return
	}
	addField := func(ptr, detail string) {
		if ve == nil {
			ve = &event.ValidationError{}
		}
		ve.Errors = append(ve.Errors, event.FieldError{Pointer: ptr, Detail: detail})
	}
	if !event.ValidID(cardID) {
		addField("/card_id", "the card_id in the path must be 1-64 of A-Z a-z 0-9 _ - . :")
	} else if p.CardID != "" && p.CardID != cardID {
		addField("/card_id", fmt.Sprintf("must be absent or equal to the card_id in the path (%q)", cardID))
	}
	if !p.UpdatedAt.IsZero() {
		addField("/updated_at", "is set by ingest and must be absent")
	}
	if ve != nil {
		s.fail(w, r, classify(ve))
		return
	}
	p.CardID, p.UpdatedAt = cardID, now.UTC()
	v, err := p.Encode()
	if err != nil {
		s.fail(w, r, &Error{Kind: KindInternal, Detail: "could not encode the profile", Err: err})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RedisTimeout)
	defer cancel()
	if err := s.rdb.Set(ctx, event.ProfileKey(cardID), v, 0).Err(); err != nil {
		s.fail(w, r, s.profileRedisError("put_profile", err))
		return
	}
	writeRaw(w, http.StatusOK, v)
}

// handleGetProfile serves GET /v1/cards/{card_id}/profile: 200 with the
// stored profile, or 404.
func (s *Service) handleGetProfile(w http.ResponseWriter, r *http.Request) {
	cardID := chi.URLParam(r, "card_id")
	notFound := &Error{Kind: KindNotFound, Detail: fmt.Sprintf("card %q has no profile", cardID)}
	if !event.ValidID(cardID) {
		s.fail(w, r, notFound) // no profile can be stored under it
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RedisTimeout)
	defer cancel()
	v, err := s.rdb.Get(ctx, event.ProfileKey(cardID)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		s.fail(w, r, notFound)
	case err != nil:
		s.fail(w, r, s.profileRedisError("get_profile", err))
	default:
		writeRaw(w, http.StatusOK, v)
	}
}

// profileRedisError is always 503: a profile cannot be read or written
// without Redis, whatever RedisFailOpen says.
func (s *Service) profileRedisError(op string, err error) *Error {
	s.metrics.redisErrors.WithLabelValues(op, "failed_closed").Inc()
	s.log.Warn("redis failed", "op", op, "outcome", "failed_closed", "err", err)
	return &Error{Kind: KindRedisUnavailable, Detail: "Redis did not answer; retry later", Err: err}
}
