// The SDK marks dashboard v1 deprecated for dashboardv2, the schema of
// Grafana 12's new dashboard API. v1 is what Grafana's "Import dashboard"
// takes in every version, so the dashboard stays v1.
//
//lint:file-ignore SA1019 dashboard v1 on purpose, see above
package main

import (
	"encoding/json"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// sidecar selects the series of the sidecars chosen by the dashboard's
// variables. The rotation row does not use it: those series come from the
// Pushgateway, under the job of the command that pushed them.
const sidecar = `job=~"$job", instance=~"$instance"`

// rate is the window of every rate(): Grafana's $__rate_interval follows
// the scrape interval of the data source.
const rate = `[$__rate_interval]`

// expr fills in the selector and window of a query written with {S} and
// [R], which keeps the queries below readable.
func expr(q string) string {
	return strings.NewReplacer("{S}", "{"+sidecar+"}", "{S, ", "{"+sidecar+", ", "[R]", rate).Replace(q)
}

var datasource = dashboard.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one Prometheus query of a panel; its refId is given by the panel.
type query struct {
	expr, legend string
	table        bool // an instant query shown as a table
}

func targets(queries []query) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range queries {
		b := prometheus.NewDataqueryBuilder().
			Datasource(datasource).
			RefId(string(rune('A' + i))).
			Expr(expr(q.expr)).
			LegendFormat(q.legend)
		if q.table {
			b = b.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			b = b.Range()
		}
		out = append(out, b)
	}
	return out
}

// panelID numbers the panels in the order they are made, so that the JSON
// is the same on every run.
type panelID struct{ next uint32 }

func (p *panelID) id() uint32 {
	p.next++
	return p.next
}

func (p *panelID) row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(p.id())
}

func (p *panelID) graph(title, description, unit string, queries ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Id(p.id()).
		Title(title).
		Description(description).
		Datasource(datasource).
		Unit(unit).
		Min(0).
		Span(8).
		Height(8).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending)).
		Targets(targets(queries))
}

func (p *panelID) single(title, description, unit string, q query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Id(p.id()).
		Title(title).
		Description(description).
		Datasource(datasource).
		Unit(unit).
		Span(6).
		Height(5).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Orientation(common.VizOrientationAuto).
		Targets(targets([]query{q}))
}

func (p *panelID) table(title, description string, q query) *table.PanelBuilder {
	q.table = true
	return table.NewPanelBuilder().
		Id(p.id()).
		Title(title).
		Description(description).
		Datasource(datasource).
		Span(12).
		Height(6).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		Targets(targets([]query{q}))
}

// mapValues shows the values of a stat as words with a color.
func mapValues(words map[string][2]string) []dashboard.ValueMapping {
	m := dashboard.NewValueMap()
	for value, wordColor := range words {
		m.Options[value] = dashboard.ValueMappingResult{Text: cog.ToPtr(wordColor[0]), Color: cog.ToPtr(wordColor[1])}
	}
	return []dashboard.ValueMapping{{ValueMap: m}}
}

func variables() []cog.Builder[dashboard.VariableModel] {
	labelValues := func(name, label, q string) *dashboard.QueryVariableBuilder {
		return dashboard.NewQueryVariableBuilder(name).
			Label(label).
			Datasource(datasource).
			Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
			Definition(q).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true)
	}
	return []cog.Builder[dashboard.VariableModel]{
		dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus"),
		labelValues("job", "Job", `label_values(fernet_key_info, job)`),
		labelValues("instance", "Sidecar", `label_values(fernet_key_info{job=~"$job"}, instance)`),
	}
}

func build() (dashboard.Dashboard, error) {
	var p panelID
	b := dashboard.NewDashboardBuilder("fernet-sidecar").
		Uid("fernet-sidecar").
		Description("fernet-sidecar: traffic, decrypt failures, keys and rotation progress, latency, resources, and rotation runs reported to a Pushgateway. Generated by deploy/grafana; do not edit in Grafana.").
		Tags([]string{"fernet-sidecar"}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Variables(variables())

	b.WithRow(p.row("Traffic")).
		WithPanel(p.graph("Calls by method and code", "gRPC calls to FernetService per second.", "reqps",
			query{`sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{S, grpc_service="fernet.v1.FernetService"}[R]))`, "{{grpc_method}} {{grpc_code}}", false})).
		WithPanel(p.graph("Items by operation and outcome", "Tokens made or opened per second. A batch call counts each of its items.", "ops",
			query{`sum by (operation, outcome) (rate(fernet_operations_total{S}[R]))`, "{{operation}} {{outcome}}", false})).
		WithPanel(p.graph("Items per call", "Items per FernetService call: 1 for single calls, the batch size for batches.", "short",
			query{`sum(rate(fernet_operations_total{S}[R])) / sum(rate(grpc_server_handled_total{S, grpc_service="fernet.v1.FernetService", grpc_method=~"(Encrypt|Decrypt|ReEncrypt).*"}[R]))`, "items per call", false}))

	b.WithRow(p.row("Failures")).
		WithPanel(p.graph("Decrypt failures by reason", "Tokens refused by Decrypt or ReEncrypt per second. invalid_signature after a rotation means a key the data needs is not loaded.", "ops",
			query{`sum by (reason) (rate(fernet_decrypt_failures_total{S}[R]))`, "{{reason}}", false})).
		WithPanel(p.graph("Share of decrypts that fail, by reason", "Refused tokens as a share of all tokens the sidecar was asked to open. The alert FernetDecryptFailuresRising fires above 1% (expired left out).", "percentunit",
			query{`sum by (reason) (rate(fernet_decrypt_failures_total{S}[R])) / ignoring (reason) group_left () (sum(rate(fernet_decrypt_failures_total{S}[R])) + sum(rate(fernet_decryptions_total{S}[R])))`, "{{reason}}", false})).
		WithPanel(p.graph("Calls not OK by method and code", "FernetService calls that returned an error status, per second.", "reqps",
			query{`sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{S, grpc_service="fernet.v1.FernetService", grpc_code!="OK"}[R]))`, "{{grpc_method}} {{grpc_code}}", false}))

	b.WithRow(p.row("Keys")).
		WithPanel(p.graph("Decryptions by key role", "Tokens opened per second, by the role of the key that verified them: the rotation progress view. decrypt_only falling to zero means no data read still needs the old key.", "ops",
			query{`sum by (key_role) (rate(fernet_decryptions_total{S}[R]))`, "{{key_role}}", false})).
		WithPanel(p.graph("Share opened with an old key", "Decryptions by a decrypt-only key as a share of all decryptions.", "percentunit",
			query{`sum(rate(fernet_decryptions_total{S, key_role="decrypt_only"}[R])) / sum(rate(fernet_decryptions_total{S}[R]))`, "old key", false})).
		WithPanel(p.graph("Loaded keys by role, per sidecar", "How many keys each sidecar holds in each role. Replicas that differ are in different phases of a rotation.", "short",
			query{`count by (instance, role) (fernet_key_info{S})`, "{{instance}} {{role}}", false})).
		WithPanel(p.table("Loaded key ids", "The id of each loaded key (first 8 bytes of its SHA-256, in hex), by sidecar and role.",
			query{`max by (instance, role, key_id) (fernet_key_info{S})`, "", true})).
		WithPanel(p.single("Last key reload", "Whether each sidecar's last key reload worked. A failed one keeps the previous keys.", "none",
			query{`fernet_key_last_reload_successful{S}`, "{{instance}}", false}).
			Mappings(mapValues(map[string][2]string{"1": {"ok", "green"}, "0": {"FAILED", "red"}}))).
		WithPanel(p.single("Keys loaded", "When each sidecar last loaded its keys successfully.", "dateTimeFromNow",
			query{`fernet_key_last_reload_timestamp_seconds{S} * 1000`, "{{instance}}", false})).
		WithPanel(p.graph("Key reloads by outcome", "Key loads per second, the first one included.", "ops",
			query{`sum by (outcome) (rate(fernet_key_reloads_total{S}[R]))`, "{{outcome}}", false}))

	b.WithRow(p.row("Latency")).
		WithPanel(p.graph("Time per item, p50 and p99", "Time to process one item, by operation. A batch observes the mean of its items.", "s",
			query{`histogram_quantile(0.5, sum by (operation, le) (rate(fernet_operation_duration_seconds_bucket{S}[R])))`, "p50 {{operation}}", false},
			query{`histogram_quantile(0.99, sum by (operation, le) (rate(fernet_operation_duration_seconds_bucket{S}[R])))`, "p99 {{operation}}", false})).
		WithPanel(p.graph("Call latency p99 by method", "Time the server spent in each FernetService call, 99th percentile.", "s",
			query{`histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{S, grpc_service="fernet.v1.FernetService"}[R])))`, "{{grpc_method}}", false}))

	b.WithRow(p.row("Resources")).
		WithPanel(p.graph("Resident memory", "Resident set size of each sidecar process.", "bytes",
			query{`process_resident_memory_bytes{S}`, "{{instance}}", false})).
		WithPanel(p.graph("Go heap in use", "Bytes in in-use heap spans.", "bytes",
			query{`go_memstats_heap_inuse_bytes{S}`, "{{instance}}", false})).
		WithPanel(p.graph("Goroutines", "Goroutines of each sidecar; each open connection and call holds some.", "short",
			query{`go_goroutines{S}`, "{{instance}}", false})).
		WithPanel(p.graph("Open file descriptors", "Connections (API, health, metrics) and files of each sidecar: the sidecar counts no connections itself, and each one is a descriptor.", "short",
			query{`process_open_fds{S}`, "{{instance}}", false}))

	b.WithRow(p.row("Refused requests and TOTP")).
		WithPanel(p.graph("Refused by admission control, by reason", "Requests the sidecar refused before doing them, to stay within its limits.", "reqps",
			query{`sum by (reason) (rate(fernet_admission_rejected_total{S}[R]))`, "{{reason}}", false})).
		WithPanel(p.graph("Methods refused", "Calls to a method this sidecar does not allow (--allow-methods), per second.", "reqps",
			query{`sum by (method) (rate(fernet_method_denied_total{S}[R]))`, "{{method}}", false})).
		WithPanel(p.graph("TOTP verifications by outcome", "One-time codes checked per second, by outcome.", "ops",
			query{`sum by (outcome) (rate(fernet_totp_verifications_total{S}[R]))`, "{{outcome}}", false}))

	rotationRun := "{{job}} {{table}}.{{column}} {{shard}}"
	b.WithRow(p.row("Rotation runs (Pushgateway)")).
		WithPanel(p.table("Run state", "The state of the last run of each job, table and column: running, complete, remaining (rows left off the primary key), failed or interrupted.",
			query{`max by (job, table, column, shard, state) (fernet_rotation_state == 1)`, "", true})).
		WithPanel(p.table("Last successful run", "When each table and column last had a run that left every row under the primary key.",
			query{`max by (job, table, column, shard) (fernet_rotation_last_success_timestamp_seconds) * 1000`, "", true}).
			Unit("dateTimeAsIso")).
		WithPanel(p.graph("Progress", "Rows the run has scanned, as a share of the rows it had to scan when it started.", "percentunit",
			query{`clamp_max(fernet_rotation_rows_scanned_total / (fernet_rotation_rows_to_scan > 0), 1)`, rotationRun, false})).
		WithPanel(p.graph("Rows scanned per second", "How fast each run walks its table.", "short",
			query{`sum by (job, table, column, shard) (rate(fernet_rotation_rows_scanned_total[R]))`, rotationRun, false})).
		WithPanel(p.graph("Rows of the current run, by outcome", "What the last run did so far: re-encrypted, already current, undecryptable (left as they are), legacy plaintext encrypted, and conflicts with app writes (re-read and retried).", "short",
			query{`sum by (job, table, column, shard) (fernet_rotation_rows_reencrypted_total)`, "re-encrypted " + rotationRun, false},
			query{`sum by (job, table, column, shard) (fernet_rotation_rows_current_total)`, "current " + rotationRun, false},
			query{`sum by (job, table, column, shard) (fernet_rotation_rows_undecryptable_total)`, "undecryptable " + rotationRun, false},
			query{`sum by (job, table, column, shard) (fernet_rotation_rows_plaintext_encrypted_total)`, "plaintext encrypted " + rotationRun, false},
			query{`sum by (job, table, column, shard) (fernet_rotation_conflicts_total)`, "conflicts " + rotationRun, false})).
		WithPanel(p.graph("Time since last progress", "Seconds since each run started or last committed a batch. The alert FernetRotationStalled fires when a running run has not progressed for 15 minutes.", "s",
			query{`time() - max by (job, table, column, shard) (fernet_rotation_last_progress_timestamp_seconds)`, rotationRun, false}))

	return b.Build()
}

// dashboardJSON is the dashboard as Grafana's import takes it.
func dashboardJSON() ([]byte, error) {
	d, err := build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
