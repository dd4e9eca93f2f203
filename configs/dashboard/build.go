package main

import (
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasourceUID is the Prometheus data source that
// configs/grafana/provisioning/datasources/prometheus.yml provisions.
const datasourceUID = "keygate-prometheus"

// Grid sizes: Grafana's grid is 24 columns wide; every line of panels
// fills it, so the builder's own layout places them.
const (
	panelHeight = 8
	fullWidth   = 24
)

var datasource = dashboard.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(datasourceUID)}

// query is one panel target: PromQL and the legend Grafana draws for it.
type query struct {
	expr, legend string
}

// panel is a panel builder and the width it takes on its line.
type panel struct {
	b     cog.Builder[dashboard.Panel]
	width uint32
}

// row is a dashboard row and its panels, laid out left to right.
type row struct {
	title  string
	panels []panel
}

func build() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("keygate").
		Uid("keygate").
		Description("keygate, the LLM API gateway: requests, keys, budgets, latency, tokens and cooldowns. Queries add up every keygate replica Prometheus scrapes.").
		Tags([]string{"keygate", "llm", "gateway"}).
		Time("now-1h", "now").
		Refresh("30s").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Editable().
		Annotation(dashboard.NewAnnotationQueryBuilder().
			Name("Annotations & Alerts").
			Datasource(dashboard.DataSourceRef{Type: cog.ToPtr("grafana"), Uid: cog.ToPtr("-- Grafana --")}).
			Enable(true).
			Hide(true).
			IconColor("rgba(0, 211, 255, 1)").
			Type("dashboard").
			BuiltIn(1)).
		WithVariable(keyVariable())
	var id uint32
	for _, r := range rows() {
		id++
		b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			b.WithPanel(placed{p, id})
		}
	}
	return b.Build()
}

// placed sets a panel's id and size as it is built, since the panel
// builders of different types share no interface for them.
type placed struct {
	panel
	id uint32
}

func (p placed) Build() (dashboard.Panel, error) {
	v, err := p.b.Build()
	if err != nil {
		return v, err
	}
	v.Id = cog.ToPtr(p.id)
	v.GridPos = &dashboard.GridPos{H: panelHeight, W: p.width}
	return v, nil
}

// keyVariable is $key: the key ids keygate_key_state shows, several at
// once or all; every per-key panel outside Overview filters on it.
func keyVariable() *dashboard.QueryVariableBuilder {
	const q = "label_values(keygate_key_state, key)"
	return dashboard.NewQueryVariableBuilder("key").
		Label("key").
		Datasource(datasource).
		Definition(q).
		Query(dashboard.StringOrMap{Map: map[string]any{
			"qryType": 1,
			"query":   q,
			"refId":   "PrometheusVariableQueryEditor-VariableQuery",
		}}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortNumericalAsc).
		Multi(true).
		IncludeAll(true).
		AllowCustomValue(false).
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		})
}

func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		out[i] = prometheus.NewDataqueryBuilder().
			Datasource(datasource).
			RefId(string(rune('A' + i))).
			Expr(q.expr).
			LegendFormat(q.legend).
			Range().
			EditorMode(prometheus.QueryEditorModeCode)
	}
	return out
}

// series is a time series panel in the dashboard's common style: lines from
// zero, a table legend with mean, max and last, a shared sorted tooltip.
func series(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return signed(title, description, unit, qs...).Min(0)
}

// signed is a series whose axis goes below zero when the values do.
func signed(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Targets(targets(qs)).
		Unit(unit).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic)).
		DrawStyle(common.GraphDrawStyleLine).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNone).Group("A")).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// bars is a series panel drawn as bars, for counts per interval.
func bars(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return series(title, description, unit, qs...).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(60)
}

// step is one state of a state timeline: the value, its name and colour.
type step struct {
	value float64
	text  string
	color string
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// timeline is a state-timeline panel whose values are the given states.
func timeline(title, description string, states []step, qs ...query) *statetimeline.PanelBuilder {
	options := map[string]dashboard.ValueMappingResult{}
	thresholds := make([]dashboard.Threshold, len(states))
	for i, s := range states {
		options[formatValue(s.value)] = dashboard.ValueMappingResult{
			Text: cog.ToPtr(s.text), Color: cog.ToPtr(s.color), Index: cog.ToPtr(int32(i)),
		}
		thresholds[i] = dashboard.Threshold{Value: cog.ToPtr(s.value), Color: s.color}
	}
	thresholds[0].Value = nil // the first step starts at -Infinity
	// Go has no -Infinity in JSON; Grafana reads null as it.
	return statetimeline.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Targets(targets(qs)).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		Thresholds(dashboard.NewThresholdsConfigBuilder().
			Mode(dashboard.ThresholdsModeAbsolute).
			Steps(thresholds)).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
			Type: dashboard.MappingTypeValueToText, Options: options,
		}}}).
		LineWidth(0).
		FillOpacity(80).
		MergeValues(true).
		ShowValue(common.VisibilityModeAuto).
		AlignValue(common.TimelineValueAlignmentLeft).
		RowHeight(0.9).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeSingle).
			Sort(common.SortOrderNone))
}
