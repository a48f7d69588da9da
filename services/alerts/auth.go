package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Token login. With Config.Token set, the analyst API, the stream and
// /metrics need either "Authorization: Bearer TOKEN" (tools, Prometheus)
// or the session cookie POST /api/v1/login sets (the dashboard).
//
// Invariants (docs/design/alerts-sessions.md tells the whole protocol):
//   - the cookie holds a random 32-byte id; the database holds only
//     HMAC-SHA256(token, id), so neither a database dump nor the cookie
//     alone yields the other, and a new token ends every session;
//   - a session lives in the database, so every replica accepts it and a
//     logout on any replica ends it on all of them;
//   - it ends after LoginIdleTimeout without use and LoginMaxAge after
//     the login, whichever comes first.

const sessionCookie = "fraudstream_session"

// sessionIDBytes is the size of the random session id.
const sessionIDBytes = 32

type auth struct {
	token    string
	tokenSum [sha256.Size]byte // of token, for a constant-time, length-blind comparison
	store    Store
	idle     time.Duration // Config.LoginIdleTimeout
	maxAge   time.Duration // Config.LoginMaxAge
	secure   bool          // Config.SecureCookie
	throttle *loginThrottle
	log      *slog.Logger
	now      func() time.Time
}

func newAuth(cfg Config, store Store, log *slog.Logger) *auth {
	return &auth{
		token: cfg.Token, tokenSum: sha256.Sum256([]byte(cfg.Token)), store: store,
		idle: cfg.LoginIdleTimeout, maxAge: cfg.LoginMaxAge, secure: cfg.SecureCookie,
		throttle: newLoginThrottle(), log: log, now: time.Now,
	}
}

func (a *auth) enabled() bool { return a.token != "" }

// tokenOK compares in constant time: both sides are hashed first, so not
// even the token's length leaks.
func (a *auth) tokenOK(s string) bool {
	sum := sha256.Sum256([]byte(s))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

// sessionKey is what the database stores for a session id.
func (a *auth) sessionKey(id []byte) []byte {
	m := hmac.New(sha256.New, []byte(a.token))
	m.Write([]byte("fraudstream alerts dashboard session v2\x00"))
	m.Write(id)
	return m.Sum(nil)
}

// cookieKey returns the session key of r's cookie, or nil when r has no
// well-formed one.
func (a *auth) cookieKey(r *http.Request) []byte {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(id) != sessionIDBytes {
		return nil
	}
	return a.sessionKey(id)
}

// errBadCredentials is a request whose credentials are missing, wrong or
// ended; any other error from check is the database's.
var errBadCredentials = errors.New("no valid credentials")

type sessionCtxKey struct{}

// check returns r's context, carrying the session key when r is
// authenticated by a session cookie, or errBadCredentials. A live session
// used after a tenth of its idle timeout is extended.
func (a *auth) check(r *http.Request) (context.Context, error) {
	ctx := r.Context()
	if !a.enabled() {
		return ctx, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") && a.tokenOK(strings.TrimSpace(tok)) {
			return ctx, nil
		}
		return ctx, errBadCredentials
	}
	key := a.cookieKey(r)
	if key == nil {
		return ctx, errBadCredentials
	}
	ss, err := a.store.Session(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return ctx, errBadCredentials
	}
	if err != nil {
		return ctx, err
	}
	now := a.now()
	if !sessionLive(ss, now) {
		return ctx, errBadCredentials
	}
	if next := now.Add(a.idle); next.Sub(ss.IdleUntil) > a.idle/10 && ss.IdleUntil.Before(ss.ExpiresAt) {
		// A failed extension only shortens the session; the request stands.
		if err := a.store.TouchSession(ctx, key, next); err != nil {
			a.log.Warn("extend dashboard session", "err", err)
		}
	}
	return context.WithValue(ctx, sessionCtxKey{}, key), nil
}

func sessionLive(ss Session, now time.Time) bool {
	return now.Before(ss.IdleUntil) && now.Before(ss.ExpiresAt)
}

// stillValid reports whether the session a long request (the stream) was
// authenticated with is still live; a request without one always is. A
// database error keeps the request: streams do not drop on a blip.
func (a *auth) stillValid(ctx context.Context) bool {
	key, ok := ctx.Value(sessionCtxKey{}).([]byte)
	if !ok {
		return true
	}
	ss, err := a.store.Session(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false
	}
	return err != nil || sessionLive(ss, a.now())
}

// require is middleware answering 401 to requests without credentials,
// and 503 when the database cannot say whether a session is live.
func (a *auth) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := a.check(r)
		switch {
		case errors.Is(err, errBadCredentials):
			w.Header().Set("WWW-Authenticate", `Bearer realm="fraudstream alerts"`)
			writeProblem(w, r, http.StatusUnauthorized, "log in with the dashboard token (POST /api/v1/login) or send Authorization: Bearer TOKEN")
			return
		case err != nil:
			a.log.Error("check dashboard session", "err", err)
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available to check the session")
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type loginRequest struct {
	Token string `json:"token"`
}

// authInfo is the body of GET /api/v1/auth: whether the dashboard must
// show its login form.
type authInfo struct {
	Required      bool `json:"required"`
	Authenticated bool `json:"authenticated"`
}

func (s *Service) authStatus(w http.ResponseWriter, r *http.Request) {
	_, err := s.auth.check(r)
	if err != nil && !errors.Is(err, errBadCredentials) {
		s.log.Error("check dashboard session", "err", err)
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available to check the session")
		return
	}
	writeJSON(w, http.StatusOK, authInfo{Required: s.auth.enabled(), Authenticated: err == nil})
}

// login serves POST /api/v1/login {"token": …}: a right token starts a
// session and sets its cookie. Failures are throttled per client address
// and overall (throttle.go): a throttled attempt gets 429 with
// Retry-After, whatever its token.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	a := s.auth
	now := a.now()
	client := clientKey(r.RemoteAddr)
	if wait := a.throttle.wait(client, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeProblem(w, r, http.StatusTooManyRequests, fmt.Sprintf("too many failed logins: try again in %d s", secs))
		return
	}
	var req loginRequest
	if !decodeJSONBody(w, r, &req) {
		return
	}
	if !a.enabled() {
		writeJSON(w, http.StatusOK, authInfo{Required: false, Authenticated: true})
		return
	}
	if !a.tokenOK(req.Token) {
		a.throttle.fail(client, now)
		s.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		writeProblem(w, r, http.StatusUnauthorized, "wrong token")
		return
	}
	a.throttle.succeed(client)

	id := make([]byte, sessionIDBytes)
	if _, err := rand.Read(id); err != nil {
		s.log.Error("session id", "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "cannot make a session id")
		return
	}
	ss := Session{Key: a.sessionKey(id), CreatedAt: now, IdleUntil: now.Add(min(a.idle, a.maxAge)), ExpiresAt: now.Add(a.maxAge)}
	if err := a.store.CreateSession(r.Context(), ss); err != nil {
		s.log.Error("store dashboard session", "err", err)
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available to store the session")
		return
	}
	// Sessions only accumulate through logins, so logins clear ended ones.
	if n, err := a.store.DeleteEndedSessions(r.Context(), now); err != nil {
		s.log.Warn("delete ended dashboard sessions", "err", err)
	} else if n > 0 {
		s.log.Debug("deleted ended dashboard sessions", "n", n)
	}
	a.setCookie(w, r, base64.RawURLEncoding.EncodeToString(id), int(a.maxAge.Seconds()))
	writeJSON(w, http.StatusOK, authInfo{Required: true, Authenticated: true})
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) the session cookie.
func (a *auth) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: a.secure || r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
}

// logout serves POST /api/v1/logout: it deletes the session from the
// database, so its cookie is refused by every replica from then on, and
// clears the cookie.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	if key := s.auth.cookieKey(r); key != nil && s.auth.enabled() {
		if err := s.auth.store.DeleteSession(r.Context(), key); err != nil {
			s.log.Error("delete dashboard session", "err", err)
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "the database is not available: the session is not ended yet")
			return
		}
	}
	s.auth.setCookie(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
}
