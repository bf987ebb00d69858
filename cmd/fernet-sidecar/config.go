package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/keysource"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// envPrefix: every flag can also be set as FERNET_SIDECAR_<FLAG_NAME>,
// e.g. --metrics-addr as FERNET_SIDECAR_METRICS_ADDR. A flag on the command
// line wins over the variable.
const envPrefix = "FERNET_SIDECAR_"

type config struct {
	addr              string
	healthAddr        string
	socketGroup       string
	tlsCertFile       string
	tlsKeyFile        string
	tlsClientCAFile   string
	tlsClientAllow    []string
	insecure          bool
	auditCalls        bool
	allowMethods      []string // nil: all
	metricsAddr       string
	keyVar            string
	oldKeysVar        string
	keysVar           string
	saltVar           string
	dev               bool
	devKeyFile        string
	keyDerivation     keysource.Derivation
	oldKeysDerivation keysource.Derivation
	watchKeys         bool
	limits            server.Limits
	maxMessageBytes   int
	maxConnections    int
	shutdownTimeout   time.Duration
	logLevel          slog.Level
	version           bool
}

func parseConfig(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("fernet-sidecar", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:50051", `gRPC address: "host:port", or "unix:///path" for a Unix socket (mode 0600; best in a directory of its own)`)
	fs.StringVar(&cfg.socketGroup, "unix-socket-group", "", "with a unix:// --addr, also let this group (name or id) connect: mode 0660 instead of 0600")
	fs.StringVar(&cfg.tlsCertFile, "tls-cert-file", "", "serve the API over TLS with this PEM certificate (and --tls-key-file)")
	fs.StringVar(&cfg.tlsKeyFile, "tls-key-file", "", "the PEM private key of --tls-cert-file")
	fs.StringVar(&cfg.tlsClientCAFile, "tls-client-ca-file", "", "require client certificates signed by this PEM CA (mTLS)")
	fs.Func("tls-client-allow", "with --tls-client-ca-file, admit only client certificates with one of these identities (comma-separated): a URI SAN such as a SPIFFE id, a DNS SAN, or the common name", func(list string) error {
		cfg.tlsClientAllow = strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' })
		return nil
	})
	fs.BoolVar(&cfg.insecure, "insecure", false, "allow a non-loopback --addr without TLS: anyone who can reach it can decrypt")
	fs.StringVar(&cfg.healthAddr, "health-addr", "", `address serving only grpc.health.v1, for Kubernetes gRPC probes from outside the pod (e.g. ":50052"); "" turns it off`)
	fs.BoolVar(&cfg.auditCalls, "audit-calls", false, "log one audit line per call: peer, method, key ids, outcome (never values)")
	fs.Func("allow-methods", "comma-separated FernetService methods to serve, the others refused with PERMISSION_DENIED (default all: "+
		strings.Join(server.FernetMethods(), ",")+"); see docs/totp.md for a profile in which no plaintext leaves the sidecar", func(list string) (err error) {
		cfg.allowMethods, err = server.ParseMethods(list)
		return err
	})
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "127.0.0.1:9464", `HTTP address for /metrics, /healthz and /readyz; "" turns it off`)
	fs.StringVar(&cfg.keyVar, "key-env", "DJANGO_ENCRYPTION_KEY", "variable holding the primary key (or, with _FILE appended, a path to it)")
	fs.StringVar(&cfg.oldKeysVar, "old-keys-env", "OLD_DJANGO_ENCRYPTION_KEY", "variable holding decrypt-only keys, comma-separated (or, with _FILE appended, a path to them)")
	fs.StringVar(&cfg.keysVar, "keys-env", "FERNET_SIDECAR_KEYS", "variable holding the whole key list, one per line, the primary first (or, with _FILE appended, a path to it): one rename changes every key; excludes --key-env and --old-keys-env")
	cfg.keyDerivation, cfg.oldKeysDerivation = keysource.DerivationNone, keysource.DerivationNone
	fs.Func("key-derivation", `how the primary's value becomes a key: "none" (it is a Fernet key), "django-fernet-fields" (it is a Django secret, derived with that library's HKDF), "django-fernet-encrypted-fields" (a Django secret, derived with that library's PBKDF2, one key per salt of --salt-env) or "sqlalchemy-utils" (the key of sqlalchemy-utils' FernetEngine, hashed with SHA-256)`, func(name string) (err error) {
		cfg.keyDerivation, err = keysource.ParseDerivation(name)
		return err
	})
	fs.Func("old-keys-derivation", `how the decrypt-only values become keys: "none", "django-fernet-fields", "django-fernet-encrypted-fields" or "sqlalchemy-utils" (one secret per line)`, func(name string) (err error) {
		cfg.oldKeysDerivation, err = keysource.ParseDerivation(name)
		return err
	})
	fs.StringVar(&cfg.saltVar, "salt-env", "SALT_KEY", "with the django-fernet-encrypted-fields derivation, the variable holding its salts, one per line, the one new data uses first (or, with _FILE appended, a path to them)")
	fs.BoolVar(&cfg.dev, "dev", false, "with no primary key configured, use a development key kept in --dev-key-file. Not for production")
	fs.StringVar(&cfg.devKeyFile, "dev-key-file", ".fernet-sidecar-dev.key", "where --dev keeps its key (created with mode 0600); an existing one must be a regular file of this user's that no one else can read")
	fs.BoolVar(&cfg.watchKeys, "watch-keys", true, "reload the keys when a key file changes (SIGHUP always reloads)")
	fs.IntVar(&cfg.limits.MaxPlaintextBytes, "max-plaintext-bytes", server.DefaultLimits.MaxPlaintextBytes, "largest plaintext to encrypt; tokens may be as large as this encrypts to")
	fs.IntVar(&cfg.limits.MaxBatchItems, "max-batch-items", server.DefaultLimits.MaxBatchItems, "most items in one batch call")
	fs.IntVar(&cfg.maxMessageBytes, "max-message-bytes", 4<<20, "largest gRPC message received, batches included")
	fs.IntVar(&cfg.maxConnections, "max-connections", server.DefaultMaxConnections, "most API connections at once; more wait until one closes")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long calls in flight may take to finish")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (the commands are genkey and healthcheck)", fs.Arg(0))
	}
	if err := applyEnv(fs, lookupEnv); err != nil {
		return config{}, err
	}
	if cfg.limits.MaxPlaintextBytes <= 0 || cfg.limits.MaxBatchItems <= 0 || cfg.maxMessageBytes <= 0 || cfg.maxConnections <= 0 {
		return config{}, errors.New("--max-plaintext-bytes, --max-batch-items, --max-message-bytes and --max-connections must be positive")
	}
	if (cfg.tlsCertFile == "") != (cfg.tlsKeyFile == "") || (cfg.tlsClientCAFile != "" && cfg.tlsCertFile == "") {
		return config{}, errors.New("--tls-cert-file and --tls-key-file go together, and --tls-client-ca-file needs them")
	}
	if len(cfg.tlsClientAllow) > 0 && cfg.tlsClientCAFile == "" {
		return config{}, errors.New("--tls-client-allow needs --tls-client-ca-file: without client certificates there is no identity to check")
	}
	// Whoever reaches the API can decrypt every secret, so it leaves the
	// machine only encrypted, or when the operator says so in as many words.
	if !server.IsLoopback(cfg.addr) && cfg.tlsCertFile == "" && !cfg.insecure {
		return config{}, fmt.Errorf("--addr %s is reachable from other machines: serve TLS (--tls-cert-file, --tls-key-file) or pass --insecure", cfg.addr)
	}
	return cfg, nil
}

// applyEnv sets each flag not given on the command line from its variable.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		value, ok := lookupEnv(name)
		if given[f.Name] || !ok || err != nil {
			return
		}
		if setErr := f.Value.Set(value); setErr != nil {
			err = fmt.Errorf("%s: %w", name, setErr)
		}
	})
	return err
}
