// Package kmsplugin is a Kubernetes KMS v2 plugin over hsmenv KEKs: the
// service kube-apiserver calls (k8s.io/kms/pkg/service.Service: Status,
// Encrypt, Decrypt) to wrap the seeds of the data keys that encrypt Secrets
// at rest.
//
// Each seed becomes an hsmenv message (the AWS Encryption SDK message
// format v2, suite 0478, encryption context Context) whose data key every
// encrypting KEK wraps, so any one of them opens it, and so `hsmenv
// decrypt` recovers a seed without a cluster. The first encrypting KEK is
// the primary: Status reports healthy only while a real wrap and unwrap
// with it succeeded recently. Decrypting KEKs only unwrap (rotation).
package kmsplugin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/kms/pkg/service"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
)

// The encryption context every seed message carries, and Decrypt requires.
const (
	ContextKey   = "kubernetes.io/kms-v2"
	ContextValue = "seed"
)

const (
	// MaxCiphertext is the KMS v2 API's limit on a ciphertext (and on a
	// key id), which the apiserver enforces.
	MaxCiphertext = 1024
	// maxSeed bounds what Encrypt accepts: the apiserver sends 32-byte
	// seeds.
	maxSeed = 512
	// maxEDKs bounds the EDKs of a ciphertext Decrypt reads.
	maxEDKs = 16
	// apiVersion is Status's version: the KMS API the plugin serves.
	apiVersion = "v2"
	// healthy is the Healthz the apiserver takes for healthy.
	healthy = "ok"
	// seedLen is the size of the seeds the start-up and health checks
	// encrypt, the apiserver's.
	seedLen = 32
)

// Config is what a Plugin is made from.
type Config struct {
	// Keys are the URIs of the encrypting KEKs; Keys[0] is the primary.
	Keys []string
	// DecryptKeys are the URIs of KEKs that only unwrap.
	DecryptKeys []string
	// Resolver gives the PINs, module and device the URIs need.
	Resolver resolver.Options
	// HealthInterval is how long a successful health check is trusted;
	// zero means 10 s. A failed one is trusted for a tenth of it.
	HealthInterval time.Duration
	// Timeout bounds each call's device work; zero means 5 s.
	Timeout time.Duration
	// Logger gets one line per call; nil means no logging.
	Logger *slog.Logger
}

// Plugin is a KMS v2 service over hsmenv KEKs. It is safe for concurrent
// use.
type Plugin struct {
	keyID    string
	encrypt  *envelope.Keyring // the --key KEKs
	decrypt  *envelope.Keyring // the --key, then the --decrypt-key KEKs
	primary  *envelope.Keyring // Keys[0] alone, for the health check
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time

	health struct {
		sync.Mutex
		at  time.Time
		err error
	}
}

var _ service.Service = (*Plugin)(nil)

// ErrConfig reports a key set the plugin cannot serve.
var ErrConfig = errors.New("kms-plugin")

// New opens every KEK, computes the key id, and checks that a seed's
// ciphertext fits the API's limit (a real encrypt with every key). ctx
// bounds the device work of New; the Plugin keeps none of it. A failing
// primary does not fail New: Status reports it.
func New(ctx context.Context, cfg Config) (*Plugin, error) {
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("%w: no --key", ErrConfig)
	}
	p := &Plugin{interval: cfg.HealthInterval, timeout: cfg.Timeout, log: cfg.Logger, now: time.Now}
	if p.interval <= 0 {
		p.interval = 10 * time.Second
	}
	if p.timeout <= 0 {
		p.timeout = 5 * time.Second
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	keks, fps, err := open(ctx, cfg.Keys, cfg.Resolver)
	if err != nil {
		return nil, err
	}
	dkeks, _, err := open(ctx, cfg.DecryptKeys, cfg.Resolver)
	if err != nil {
		return nil, err
	}
	p.keyID = KeyID(fps)
	p.encrypt = envelope.NewKeyring(keks...)
	p.decrypt = envelope.NewKeyring(append(append([]envelope.KEK{}, keks...), dkeks...)...)
	p.primary = envelope.NewKeyring(keks[0])
	seed := make([]byte, seedLen)
	defer clear(seed)
	rand.Read(seed)
	ct, err := p.seal(ctx, p.encrypt, seed)
	if err != nil {
		return nil, fmt.Errorf("%w: encrypting a test seed: %w", ErrConfig, err)
	}
	if len(ct) > MaxCiphertext {
		return nil, fmt.Errorf("%w: a seed's ciphertext under these %d keys is %d bytes; the KMS v2 API allows %d (use fewer keys, or EC/AES keys: an RSA-3072 EDK alone is about 420 bytes)", ErrConfig, len(keks), len(ct), MaxCiphertext)
	}
	return p, nil
}

// open opens the KEK of each URI and returns it with its fingerprint.
func open(ctx context.Context, uris []string, o resolver.Options) ([]envelope.KEK, []string, error) {
	keks := make([]envelope.KEK, 0, len(uris))
	fps := make([]string, 0, len(uris))
	for _, u := range uris {
		kek, err := resolver.OpenKEK(ctx, u, o)
		if err != nil {
			return nil, nil, err
		}
		fp, err := Fingerprint(ctx, u, kek)
		if err != nil {
			return nil, nil, err
		}
		keks, fps = append(keks, kek), append(fps, fp)
	}
	return keks, fps, nil
}

// Fingerprint names the key of an opened KEK apart from how its URI is
// spelled: the SHA-256 of the public key (SPKI DER) for asymmetric keys, so
// that a TPM key file on one node and a raw-ecdh URI holding its public
// key on another are the same key; else the URI's scheme and path
// attributes (token, object, id, namespace, name, ...: not the module,
// device or PIN source, which differ between nodes), with the key's own
// identity where the KEK has one (a token's CKA_ID and check value, a
// TPM's SRK name), so that a key regenerated under the same labels is
// another key. ctx bounds the device call that identity may need.
func Fingerprint(ctx context.Context, uri string, kek envelope.KEK) (string, error) {
	if pub := resolver.PublicKeyOf(kek); pub != nil {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", keyuri.Wrap(uri, err)
		}
		sum := sha256.Sum256(der)
		return "spki:" + hex.EncodeToString(sum[:]), nil
	}
	u, err := keyuri.Parse(uri)
	if err != nil {
		return "", err
	}
	attrs := make([]string, 0, len(u.Path))
	for k, v := range u.Path {
		attrs = append(attrs, k+"="+v)
	}
	sort.Strings(attrs)
	fp := u.Scheme + ":" + strings.Join(u.Opaque, ",") + ";" + strings.Join(attrs, ";")
	if ki, ok := kek.(interface {
		KeyIdentity(context.Context) ([]byte, error)
	}); ok {
		id, err := ki.KeyIdentity(ctx)
		if err != nil {
			return "", keyuri.Wrap(uri, err)
		}
		fp += "#" + hex.EncodeToString(id)
	}
	return fp, nil
}

// KeyID is the key id of a set of encrypting keys, given their
// fingerprints: "hsmenv-" and 32 hex digits of a SHA-256 over the sorted
// fingerprints, so it does not depend on their order, and a different set
// gets a different id.
func KeyID(fingerprints []string) string {
	fps := append([]string(nil), fingerprints...)
	sort.Strings(fps)
	h := sha256.New()
	for _, fp := range fps {
		fmt.Fprintf(h, "%d:%s\n", len(fp), fp)
	}
	return "hsmenv-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// KeyID returns the plugin's key id.
func (p *Plugin) KeyID() string { return p.keyID }

// seedContext is the encryption context of every seed message.
func seedContext() envelope.EncryptionContext {
	return envelope.EncryptionContext{ContextKey: ContextValue}
}

// seal encrypts seed under kr as one message.
func (p *Plugin) seal(ctx context.Context, kr *envelope.Keyring, seed []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return envelope.Encrypt(ctx, seed, kr, envelope.EncryptOptions{Suite: envelope.SuiteCommit, Context: seedContext()})
}

// open decrypts a seed message with kr.
func (p *Plugin) open(ctx context.Context, kr *envelope.Keyring, ct []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	pt, _, err := envelope.Decrypt(ctx, ct, kr, envelope.DecryptOptions{RequiredContext: seedContext(), MaxEncryptedDataKeys: maxEDKs})
	return pt, err
}

// Encrypt wraps a seed under every encrypting KEK. ctx (the apiserver's
// deadline) bounds the device work, as does the configured timeout.
func (p *Plugin) Encrypt(ctx context.Context, uid string, seed []byte) (*service.EncryptResponse, error) {
	start := p.now()
	resp, err := p.doEncrypt(ctx, seed)
	p.logCall("Encrypt", uid, p.keyID, start, err)
	return resp, err
}

func (p *Plugin) doEncrypt(ctx context.Context, seed []byte) (*service.EncryptResponse, error) {
	if len(seed) == 0 || len(seed) > maxSeed {
		return nil, fmt.Errorf("a %d-byte seed: the plugin wraps seeds of 1 to %d bytes", len(seed), maxSeed)
	}
	ct, err := p.seal(ctx, p.encrypt, seed)
	if err != nil {
		return nil, err
	}
	if len(ct) > MaxCiphertext {
		return nil, fmt.Errorf("the ciphertext is %d bytes, the API allows %d", len(ct), MaxCiphertext)
	}
	return &service.EncryptResponse{Ciphertext: ct, KeyID: p.keyID}, nil
}

// Decrypt opens a seed message with any KEK, encrypting or decrypting,
// whatever the request's key id (an old one is the apiserver's stale data,
// which a --decrypt-key opens). ctx bounds the device work.
func (p *Plugin) Decrypt(ctx context.Context, uid string, req *service.DecryptRequest) ([]byte, error) {
	start := p.now()
	seed, err := p.doDecrypt(ctx, req)
	p.logCall("Decrypt", uid, req.KeyID, start, err)
	return seed, err
}

func (p *Plugin) doDecrypt(ctx context.Context, req *service.DecryptRequest) ([]byte, error) {
	if len(req.Ciphertext) == 0 || len(req.Ciphertext) > MaxCiphertext {
		return nil, fmt.Errorf("a %d-byte ciphertext: the API's are 1 to %d bytes", len(req.Ciphertext), MaxCiphertext)
	}
	if len(req.Annotations) > 0 {
		return nil, fmt.Errorf("the ciphertext has %d annotations; this plugin writes none", len(req.Annotations))
	}
	return p.open(ctx, p.decrypt, req.Ciphertext)
}

// Status reports the key id and whether the primary KEK works: "ok" only
// while a wrap and unwrap with it succeeded within the health interval;
// otherwise why not. The check runs at most once at a time, when the last
// result is too old; ctx bounds it.
func (p *Plugin) Status(ctx context.Context) (*service.StatusResponse, error) {
	start := p.now()
	err := p.Health(ctx)
	healthz := healthy
	if err != nil {
		healthz = strings.ReplaceAll(err.Error(), "\n", " ")
	}
	p.logCall("Status", "", p.keyID, start, err)
	return &service.StatusResponse{Version: apiVersion, Healthz: healthz, KeyID: p.keyID}, nil
}

// Health returns the result of the last health check if it is recent
// enough, else checks again: a seed wrapped and unwrapped with the primary
// KEK alone.
func (p *Plugin) Health(ctx context.Context) error {
	p.health.Lock()
	defer p.health.Unlock()
	ttl := p.interval
	if p.health.err != nil {
		ttl /= 10
	}
	if !p.health.at.IsZero() && p.now().Sub(p.health.at) < ttl {
		return p.health.err
	}
	err := p.check(ctx)
	p.health.at, p.health.err = p.now(), err
	return err
}

// check wraps and unwraps a fresh seed with the primary KEK.
func (p *Plugin) check(ctx context.Context) error {
	seed := make([]byte, seedLen)
	defer clear(seed)
	rand.Read(seed)
	ct, err := p.seal(ctx, p.primary, seed)
	if err != nil {
		return fmt.Errorf("the primary key does not wrap: %w", err)
	}
	got, err := p.open(ctx, p.primary, ct)
	if err != nil {
		return fmt.Errorf("the primary key does not unwrap: %w", err)
	}
	defer clear(got)
	if subtle.ConstantTimeCompare(got, seed) != 1 {
		return errors.New("the primary key unwrapped another seed than it wrapped")
	}
	return nil
}

// logCall writes one line per call: method, key id, latency, outcome.
func (p *Plugin) logCall(method, uid, keyID string, start time.Time, err error) {
	outcome := "ok"
	level := slog.LevelInfo
	if err != nil {
		outcome = strings.ReplaceAll(err.Error(), "\n", " ")
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("key_id", keyID),
		slog.Float64("latency_ms", float64(p.now().Sub(start).Microseconds())/1000),
		slog.String("outcome", outcome),
	}
	if uid != "" {
		attrs = append(attrs, slog.String("uid", uid))
	}
	p.log.LogAttrs(context.Background(), level, "kms", attrs...)
}
