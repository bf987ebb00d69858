package server

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

// Label values of the fernet_* metrics. Every one is from a fixed set: a
// label never holds a token, an error string or a key.
const (
	operationEncrypt   = "encrypt"
	operationDecrypt   = "decrypt"
	operationReEncrypt = "reencrypt"
	operationInspect   = "inspect"
	operationCreate    = "create_totp"
	operationVerify    = "verify_totp"

	keyRolePrimary     = "primary"
	keyRoleDecryptOnly = "decrypt_only"
)

// Metrics is the one reporter of the service's own metrics. Every series
// exists from the start, at zero, so dashboards and alerts need no absent().
type Metrics struct {
	encrypt, decrypt, reencrypt, inspect operationMetrics
	createTOTP, verifyTOTP               operationMetrics

	totpVerifications [len(totpOutcomes)]prometheus.Counter // by totp.Outcome
	methodDenied      *prometheus.CounterVec

	decryptFailures      [len(reasons.Token)]prometheus.Counter // in the order of reasons.Token
	decryptedPrimary     prometheus.Counter
	decryptedDecryptOnly prometheus.Counter

	keyInfo             *prometheus.GaugeVec
	reloadsSucceeded    prometheus.Counter
	reloadsFailed       prometheus.Counter
	lastReloadTime      prometheus.Gauge
	lastReloadSucceeded prometheus.Gauge
	// publicKeyID is the key_id label of a key.
	publicKeyID func(id string) string
}

// operationMetrics are the series of one operation, resolved once so the
// hot path does no label lookups.
type operationMetrics struct {
	operation  string // the label value, which errors start with too
	ok, failed prometheus.Counter
	duration   prometheus.Observer
}

// NewMetrics registers the service's metrics on registry.
func NewMetrics(registry prometheus.Registerer) *Metrics {
	operations := newCounterVec("fernet_operations_total",
		"Items processed, by operation (encrypt, decrypt, reencrypt, inspect, create_totp, verify_totp) and outcome (ok, error). A batch counts each item; a wrong TOTP code is ok here (see fernet_totp_verifications_total).",
		"operation", "outcome")
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fernet_operation_duration_seconds",
		Help:    fmt.Sprintf("Time to process one item, by operation. A single call observes its item's time; a batch observes, once per share of up to %d items that a worker takes, the mean time of the share's items.", itemsPerShare),
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	}, []string{"operation"})
	failures := newCounterVec("fernet_decrypt_failures_total",
		"Tokens refused by Decrypt, ReEncrypt, Inspect or VerifyTOTP, by reason.",
		"reason")
	decryptions := newCounterVec("fernet_decryptions_total",
		"Tokens decrypted (by Decrypt, ReEncrypt, Inspect or VerifyTOTP), by the role of the key that verified them. decrypt_only at zero means no stored data still needs an old key.",
		"key_role")
	keyInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fernet_key_info",
		Help: "1 for each loaded key, by key id and role (primary, decrypt_only). A key derived from a secret shows as \"derived\": its id would let anyone test guesses of the secret.",
	}, []string{"key_id", "role"})
	reloads := newCounterVec("fernet_key_reloads_total",
		"Key loads, the first one included, by outcome (success, failure). A failed reload keeps the keys in use.",
		"outcome")
	lastReloadTime := newGauge("fernet_key_last_reload_timestamp_seconds",
		"When the keys were last loaded successfully, in Unix seconds.")
	lastReloadSucceeded := newGauge("fernet_key_last_reload_successful",
		"1 if the last key reload succeeded, 0 if it failed and old keys are still in use.")
	totpVerifications := newCounterVec("fernet_totp_verifications_total",
		"TOTP codes checked by VerifyTOTP, by outcome (valid, invalid_code, replayed). A token that does not decrypt is not counted here.",
		"outcome")
	methodDenied := newCounterVec("fernet_method_denied_total",
		"Calls refused because --allow-methods leaves their method out, by method.",
		"method")
	registry.MustRegister(operations, durations, failures, decryptions, keyInfo, reloads, lastReloadTime, lastReloadSucceeded,
		totpVerifications, methodDenied)

	resolve := func(operation string) operationMetrics {
		return operationMetrics{
			operation: operation,
			ok:        operations.WithLabelValues(operation, "ok"),
			failed:    operations.WithLabelValues(operation, "error"),
			duration:  durations.WithLabelValues(operation),
		}
	}
	m := &Metrics{
		encrypt:              resolve(operationEncrypt),
		decrypt:              resolve(operationDecrypt),
		reencrypt:            resolve(operationReEncrypt),
		inspect:              resolve(operationInspect),
		createTOTP:           resolve(operationCreate),
		verifyTOTP:           resolve(operationVerify),
		methodDenied:         methodDenied,
		decryptedPrimary:     decryptions.WithLabelValues(keyRolePrimary),
		decryptedDecryptOnly: decryptions.WithLabelValues(keyRoleDecryptOnly),
		keyInfo:              keyInfo,
		reloadsSucceeded:     reloads.WithLabelValues("success"),
		reloadsFailed:        reloads.WithLabelValues("failure"),
		lastReloadTime:       lastReloadTime,
		lastReloadSucceeded:  lastReloadSucceeded,
		publicKeyID:          func(id string) string { return id },
	}
	for i, reason := range reasons.Token {
		m.decryptFailures[i] = failures.WithLabelValues(metricLabel(reason))
	}
	for _, outcome := range totpOutcomes {
		m.totpVerifications[outcome] = totpVerifications.WithLabelValues(outcome.String())
	}
	for _, method := range fernetv1.FernetService_ServiceDesc.Methods {
		methodDenied.WithLabelValues(method.MethodName)
	}
	return m
}

func newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// totpOutcomes are the outcomes of a TOTP check.
var totpOutcomes = [...]totp.Outcome{totp.InvalidCode, totp.Valid, totp.Replayed}

// ObserveKeyReload records a key load: keyring is the key set in use after
// it, and err says why it failed, if it did.
func (m *Metrics) ObserveKeyReload(keyring *fernet.Keyring, err error) {
	if err != nil {
		m.reloadsFailed.Inc()
		m.lastReloadSucceeded.Set(0)
		return
	}
	m.reloadsSucceeded.Inc()
	m.lastReloadSucceeded.Set(1)
	m.lastReloadTime.SetToCurrentTime()
	m.setKeys(keyring)
}

// setKeys makes fernet_key_info describe keyring.
func (m *Metrics) setKeys(keyring *fernet.Keyring) {
	m.keyInfo.Reset()
	m.keyInfo.WithLabelValues(m.publicKeyID(keyring.Primary().ID()), keyRolePrimary).Set(1)
	for _, key := range keyring.DecryptOnly() {
		m.keyInfo.WithLabelValues(m.publicKeyID(key.ID()), keyRoleDecryptOnly).Set(1)
	}
}

// tally adds up what some items of one operation did, so that a batch
// touches the shared series once per share of items, not once per item:
// with the workers of a batch on several cores, each touch of a shared
// series is a cache line taken from another core.
type tally struct {
	ok, failed           int
	primary, decryptOnly int
	failures             [len(reasons.Token)]int
}

// encrypted counts an item that made a token.
func (t *tally) encrypted(err error) {
	if err != nil {
		t.failed++
		return
	}
	t.ok++
}

// decrypted counts an item that had to decrypt a token: whether it failed
// and why, or which role of key verified it.
func (t *tally) decrypted(primary bool, err error) {
	t.encrypted(err)
	switch {
	case err != nil:
		if i := slices.Index(reasons.Token[:], reasons.Of(err)); i >= 0 {
			t.failures[i]++
		}
	case primary:
		t.primary++
	default:
		t.decryptOnly++
	}
}

// record adds the items of t, which took elapsed in all, to operation's
// series. The duration histogram gets their mean, once: for a single
// call that is the item's own time. Timing each item of a batch instead
// would add two clock reads (about 60 ns each here) and a touch of the
// shared histogram to an item that takes the engine about a microsecond.
func (m *Metrics) record(operation operationMetrics, t *tally, elapsed time.Duration) {
	items := t.ok + t.failed
	if items == 0 {
		return
	}
	operation.duration.Observe(elapsed.Seconds() / float64(items))
	addCount(operation.ok, t.ok)
	addCount(operation.failed, t.failed)
	addCount(m.decryptedPrimary, t.primary)
	addCount(m.decryptedDecryptOnly, t.decryptOnly)
	for i, n := range t.failures {
		addCount(m.decryptFailures[i], n)
	}
}

func addCount(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}
