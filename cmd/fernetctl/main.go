// Command fernetctl operates on data encrypted through fernet-sidecar.
//
//	fernetctl reencrypt --dsn DSN --table T --column C [flags]
//
// re-encrypts one column of one table in place under the sidecar's primary
// key, resumably; --check and --dry-run only report. See docs/fernetctl.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/rotation"
)

// Exit codes, documented in docs/fernetctl.md.
const (
	exitOK          = 0
	exitFailed      = 1   // an error; a rotation can be resumed
	exitUsage       = 2   // bad flags
	exitRemaining   = 3   // done, but rows are (or would stay) off the primary key
	exitInterrupted = 130 // SIGINT or SIGTERM; resumable
)

func main() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, signals, isTerminal(os.Stderr)))
}

const usage = `usage: fernetctl reencrypt --dsn DSN --table TABLE --column COLUMN [flags]

Re-encrypts one column of one table in place, through fernet-sidecar's
ReEncryptBatch, under the sidecar's primary key. See docs/fernetctl.md.

flags:
`

// config is the parsed command line.
type config struct {
	dsn, table, pk, column, where string
	batchSize                     int
	sidecar                       string
	timeout                       time.Duration
	state                         string
	restart                       bool
	dryRun, check                 bool
	legacy                        rotation.PlaintextShape
	encryptPlaintext              bool
	shard                         rotation.Shard
	progressInterval              time.Duration
	pushgateway                   string
}

// bareLegacyPlaintext gives a bare --legacy-plaintext, a switch before it
// took a shape, its old meaning: base32.
func bareLegacyPlaintext(args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i, a := range args {
		out = append(out, a)
		if (a == "--legacy-plaintext" || a == "-legacy-plaintext") && (i+1 == len(args) || strings.HasPrefix(args[i+1], "-")) {
			out = append(out, string(rotation.Base32))
		}
	}
	return out
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fernetctl reencrypt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.dsn, "dsn", "", "database: postgres://..., mysql://..., sqlite:PATH, file:PATH or a *.sqlite3/*.sqlite/*.db path (default $DATABASE_URL)")
	fs.StringVar(&c.table, "table", "", "table, optionally schema.table (required)")
	fs.StringVar(&c.pk, "pk", "id", "primary-key column: one unique column of any type (integer, uuid, text, binary)")
	fs.StringVar(&c.column, "column", "", "column holding the tokens (required)")
	fs.StringVar(&c.where, "where", "", "extra SQL condition ANDed into every query, e.g. \"confirmed\"; trusted, not escaped")
	fs.IntVar(&c.batchSize, "batch-size", rotation.DefaultBatchSize, "rows per batch and per transaction")
	fs.StringVar(&c.sidecar, "sidecar", "127.0.0.1:50051", "fernet-sidecar address: host:port or unix:///path")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of each call to the sidecar")
	fs.StringVar(&c.state, "state", "", "checkpoint file (default .fernetctl-TABLE.COLUMN.json in the working directory)")
	fs.BoolVar(&c.restart, "restart", false, "ignore an existing checkpoint and start from the first row")
	fs.BoolVar(&c.dryRun, "dry-run", false, "report what a run would do, and under which key each row is; write nothing")
	fs.BoolVar(&c.check, "check", false, "report under which key each row is; write nothing; exit 3 unless all are under the primary key")
	fs.Func("legacy-plaintext", "count rows holding a bare TOTP secret instead of a token, of this shape: base32 (alone, the default) or totp-hex (django-otp's)", func(s string) (err error) {
		c.legacy, err = rotation.ParsePlaintextShape(s)
		return err
	})
	fs.BoolVar(&c.encryptPlaintext, "encrypt-plaintext", false, "encrypt those rows in place (implies --legacy-plaintext base32 unless given)")
	shard := fs.String("shard", "", "i/n: walk only part i of n (0 <= i < n) of the table, beside the n-1 other parts' runs")
	fs.DurationVar(&c.progressInterval, "progress-interval", 10*time.Second, "when stderr is not a terminal, print a progress line this often; 0 for none")
	fs.StringVar(&c.pushgateway, "pushgateway", "", "Prometheus Pushgateway URL (http://host:9091): push the run's progress and outcome there, as job fernetctl grouped by table, column and shard")
	if err := fs.Parse(bareLegacyPlaintext(args)); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.dsn == "" {
		// A DSN on the command line shows in ps; the variable does not.
		c.dsn = getenv("DATABASE_URL")
	}
	switch {
	case c.dsn == "":
		return c, errors.New("--dsn (or $DATABASE_URL) is required")
	case c.table == "" || c.column == "":
		return c, errors.New("--table and --column are required")
	case c.dryRun && c.check:
		return c, errors.New("--dry-run and --check are exclusive")
	case c.batchSize < 1 || c.batchSize > 100_000:
		return c, errors.New("--batch-size must be between 1 and 100000")
	case c.timeout <= 0:
		return c, errors.New("--timeout must be positive")
	case c.pushgateway != "" && (c.dryRun || c.check):
		return c, errors.New("--pushgateway reports rotations; --dry-run and --check do not rotate")
	}
	if *shard != "" {
		var err error
		if c.shard, err = rotation.ParseShard(*shard); err != nil {
			return c, err
		}
	}
	if c.state == "" {
		c.state = ".fernetctl-" + c.table + "." + c.column + ".json"
		if c.shard.Count > 1 {
			c.state = fmt.Sprintf(".fernetctl-%s.%s.shard-%d-of-%d.json", c.table, c.column, c.shard.Index, c.shard.Count)
		}
	}
	return c, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer, signals <-chan os.Signal, tty bool) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "  run \"fernetctl reencrypt -h\" for them")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "reencrypt" {
		fmt.Fprintf(stderr, "fernetctl: unknown command %q; the command is reencrypt\n", args[0])
		return exitUsage
	}
	cfg, err := parseFlags(args[1:], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "fernetctl:", err)
		return exitUsage
	}
	return reencrypt(cfg, stdout, stderr, signals, tty)
}

func reencrypt(cfg config, stdout, stderr io.Writer, signals <-chan os.Signal, tty bool) int {
	mode := cfg.mode()
	db, err := rotation.Open(cfg.dsn, mode != rotation.Rotate)
	if err != nil {
		fmt.Fprintln(stderr, "fernetctl:", err)
		return exitUsage
	}
	defer db.Close()
	conn, err := dialSidecar(cfg.sidecar, cfg.timeout)
	if err != nil {
		fmt.Fprintln(stderr, "fernetctl:", err)
		return exitUsage
	}
	defer conn.Close()
	ctx, interrupt, stopHandling := handleSignals(signals, stderr)
	defer stopHandling()

	show := newProgress(stderr, tty, cfg.progressInterval, time.Now)
	push := newPushReporter(cfg, stderr)
	job := newJob(cfg, mode, db, sidecar{conn}, interrupt, func(pr rotation.Progress) { show.update(pr); push.progress(pr) })
	announce(cfg, mode, db, stderr)
	push.start()
	report, err := job.Run(ctx)
	show.done()
	push.finish(report, err)
	if report != nil {
		report.Write(stdout)
	}
	warnPartialCheck(cfg, mode, stderr)
	return outcome(cfg, mode, report, err, ctx.Err() != nil, stderr)
}

// warnPartialCheck says that a --check limited by --where or --shard
// cannot clear the old key's retirement: a row outside it still under the
// old key would lock its user out once the key is gone.
func warnPartialCheck(cfg config, mode rotation.Mode, stderr io.Writer) {
	var limits []string
	if strings.TrimSpace(cfg.where) != "" {
		limits = append(limits, "--where")
	}
	if cfg.shard.Count > 1 {
		limits = append(limits, "--shard "+cfg.shard.String())
	}
	if mode != rotation.Check || len(limits) == 0 {
		return
	}
	fmt.Fprintf(stderr, "fernetctl: warning: this check covers only the rows within %s, so it cannot clear the old key's retirement; "+
		"before retiring it, run --check without --where and --shard (docs/rotation.md, phase 4)\n", strings.Join(limits, " and "))
}

// mode is what --check and --dry-run ask for: a rotation without either.
func (c config) mode() rotation.Mode {
	switch {
	case c.check:
		return rotation.Check
	case c.dryRun:
		return rotation.DryRun
	}
	return rotation.Rotate
}

// handleSignals makes the first signal stop the job between batches: the
// batch in flight commits whole and the checkpoint names it. A second one
// cancels ctx, which aborts the batch in flight: it rolls back. stop ends
// the handling, and returns once it has.
func handleSignals(signals <-chan os.Signal, stderr io.Writer) (ctx context.Context, interrupt <-chan struct{}, stop func()) {
	interrupted := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	finished, handled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(handled)
		for n := 0; ; n++ {
			select {
			case <-finished:
				return
			case sig := <-signals:
				if n == 0 {
					fmt.Fprintf(stderr, "\nfernetctl: %v: stopping after the batch in flight (again to abort it)\n", sig)
					close(interrupted)
				} else {
					fmt.Fprintf(stderr, "\nfernetctl: %v: aborting the batch in flight; it rolls back\n", sig)
					cancel()
				}
			}
		}
	}()
	return ctx, interrupted, func() {
		close(finished)
		<-handled
		cancel()
	}
}

func newJob(cfg config, mode rotation.Mode, db *rotation.Database, crypter rotation.Crypter, interrupt <-chan struct{}, progress func(rotation.Progress)) *rotation.Job {
	job := &rotation.Job{
		DB:               db,
		Crypter:          crypter,
		Table:            cfg.table,
		PK:               cfg.pk,
		Column:           cfg.column,
		Where:            cfg.where,
		BatchSize:        cfg.batchSize,
		Mode:             mode,
		Shard:            cfg.shard,
		LegacyPlaintext:  cfg.legacy,
		EncryptPlaintext: cfg.encryptPlaintext,
		Restart:          cfg.restart,
		Interrupt:        interrupt,
		Progress:         progress,
	}
	if mode == rotation.Rotate {
		job.Checkpoint = &rotation.Checkpoint{Path: cfg.state}
	}
	return job
}

// announce says what the run is about to do.
func announce(cfg config, mode rotation.Mode, db *rotation.Database, stderr io.Writer) {
	part := ""
	if cfg.shard.Count > 1 {
		part = ", shard " + cfg.shard.String()
	}
	fmt.Fprintf(stderr, "fernetctl: %s %s.%s in %s, by %s%s, %d rows a batch, sidecar %s\n",
		mode, cfg.table, cfg.column, db, cfg.pk, part, cfg.batchSize, cfg.sidecar)
	if mode == rotation.Rotate {
		fmt.Fprintf(stderr, "fernetctl: checkpoint %s\n", cfg.state)
	}
}

// outcome says what the run's end means for the operator, and is the exit
// code. aborted is true when a second signal cancelled the run.
func outcome(cfg config, mode rotation.Mode, report *rotation.Report, err error, aborted bool, stderr io.Writer) int {
	switch {
	case errors.Is(err, rotation.ErrInterrupted), err != nil && aborted:
		fmt.Fprintln(stderr, "fernetctl: interrupted")
		howToResume(cfg, mode, report, stderr)
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, "fernetctl:", err)
		howToResume(cfg, mode, report, stderr)
		return exitFailed
	}
	if stale := report.StaleCheckpoint(); stale > 0 {
		fmt.Fprintf(stderr, "fernetctl: %d rows before the checkpoint are under an old key: the checkpoint claimed work the database does not hold "+
			"(the database restored from a backup, the checkpoint copied from elsewhere, or an app instance still encrypting under an old key?). "+
			"The checkpoint is gone, so running the same command again walks the whole table.\n", stale)
	}
	code := exitOK
	if report.Remaining() > 0 {
		fmt.Fprintf(stderr, "fernetctl: %d rows are not under the primary key %s (see the ids above)\n", report.Remaining(), report.Keys.Primary)
		code = exitRemaining
	}
	if report.NewPrimary != "" {
		fmt.Fprintf(stderr, "fernetctl: the sidecar's primary key changed during the run, from %s to %s, so this run cannot say that every row "+
			"is under the primary key; run the same command again\n", report.Keys.Primary, report.NewPrimary)
	}
	if report.PrimaryUnconfirmed != nil {
		fmt.Fprintf(stderr, "fernetctl: every row was walked, but %v, so this run cannot say that %s is still the primary key; "+
			"run the same command with --check\n", report.PrimaryUnconfirmed, report.Keys.Primary)
	}
	if report.PrimaryInDoubt() {
		code = exitRemaining
	}
	return code
}

// howToResume says, after a rotation that stopped, what running it again
// does.
func howToResume(cfg config, mode rotation.Mode, report *rotation.Report, stderr io.Writer) {
	switch {
	case report == nil || mode != rotation.Rotate:
		// stopped before the walk began, or nothing to resume
	case report.LastPK.IsZero() && report.ResumedAfter.IsZero():
		fmt.Fprintln(stderr, "fernetctl: nothing was committed; run the same command again to start over")
	default:
		fmt.Fprintf(stderr, "fernetctl: every batch up to the checkpoint in %s committed; run the same command again to resume from it\n", cfg.state)
	}
}
