package traffic

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"time"
)

// Poster sends POSTs to ingest with its API key over keep-alive
// connections: the one place the dev stack's traffic (Sender) and the load
// generator (tools/loadgen) build their requests.
type Poster struct {
	URL    string // ingest base URL, e.g. http://127.0.0.1:8081
	APIKey string // bearer key; none when empty
	Client *http.Client
}

// KeepAliveClient is a client that keeps up to conns idle connections to
// one host, so that conns concurrent senders never dial again. It has no
// overall timeout: each request's context bounds it.
func KeepAliveClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}}
}

// Post sends body to URL+path. The caller reads and closes the response
// body; ctx bounds the request and the reading of its body.
func (p *Poster) Post(ctx context.Context, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if p.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.APIKey)
	}
	return p.Client.Do(req)
}
