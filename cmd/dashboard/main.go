// Command dashboard draws the CloudWatch dashboard serverless.yml defines,
// read from the packaged CloudFormation template: each widget where the
// dashboard places it, with its title and the metrics it charts. It draws
// the layout, not data; the data is CloudWatch's. `make dashboard` writes
// docs/dashboard.png with it.
//
//	dashboard -template build/sls-test/cloudformation-template-update-stack.json -o docs/dashboard.png
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	tmpl := flag.String("template", "", "the packaged CloudFormation template (JSON)")
	out := flag.String("o", "docs/dashboard.png", "the PNG to write")
	flag.Parse()
	if err := run(*tmpl, *out); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(tmplPath, outPath string) error {
	b, err := os.ReadFile(tmplPath)
	if err != nil {
		return err
	}
	body, err := dashboardBody(b)
	if err != nil {
		return err
	}
	d, err := parse(body)
	if err != nil {
		return err
	}
	f, err := os.Create(outPath)
	if err != nil {
		return err
	}
	if err := render(d, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dashboardBody is the RelayDashboard's body with CloudFormation's
// substitutions made with readable stand-ins.
func dashboardBody(template []byte) (string, error) {
	var t struct {
		Resources map[string]struct {
			Properties struct {
				DashboardBody struct {
					Sub []json.RawMessage `json:"Fn::Sub"`
				}
			}
		}
	}
	if err := json.Unmarshal(template, &t); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	sub := t.Resources["RelayDashboard"].Properties.DashboardBody.Sub
	if len(sub) == 0 {
		return "", fmt.Errorf("template: no RelayDashboard with an Fn::Sub body (is the dashboard param \"false\"?)")
	}
	var body string
	if err := json.Unmarshal(sub[0], &body); err != nil {
		return "", fmt.Errorf("template: dashboard body: %w", err)
	}
	return strings.NewReplacer("${AWS::Region}", "region", "${Fn}", "function", "${Source}", "source queue", "${Dlq}", "DLQ").Replace(body), nil
}

// dashboard is the part of CloudWatch's dashboard body this draws.
type dashboard struct {
	Widgets []widget
}

type widget struct {
	X, Y, Width, Height int
	Properties          struct {
		Title   string
		Stat    string
		Metrics [][]any
	}
}

func parse(body string) (dashboard, error) {
	var d dashboard
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		return d, fmt.Errorf("dashboard body: %w", err)
	}
	if len(d.Widgets) == 0 {
		return d, fmt.Errorf("dashboard body: no widgets")
	}
	return d, nil
}

// labels says what each line of a widget charts.
func (w widget) labels() []string {
	var out []string
	for _, m := range w.Properties.Metrics {
		opts, _ := m[len(m)-1].(map[string]any)
		if opts["visible"] == false {
			continue
		}
		if expr, ok := opts["expression"].(string); ok {
			label, _ := opts["label"].(string)
			if label == "" {
				label = expr
				if strings.Contains(expr, "FailedRecords") {
					label = "FailedRecords, one line per Reason"
				}
			}
			out = append(out, label)
			continue
		}
		stat := w.Properties.Stat
		if s, ok := opts["stat"].(string); ok {
			stat = s
		}
		label := fmt.Sprint(m[1])
		if stat != "" {
			label += " (" + stat + ")"
		}
		out = append(out, label)
	}
	return out
}

// Grid units in points: CloudWatch's dashboard is 24 units wide.
const (
	unitW  = 40
	unitH  = 30
	margin = 12
)

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255}, color.RGBA{214, 39, 40, 255},
}

// render draws d as a PNG: one box per widget where the dashboard puts it.
func render(d dashboard, w io.Writer) error {
	rows := 0
	for _, wd := range d.Widgets {
		rows = max(rows, wd.Y+wd.Height)
	}
	width, height := vg.Length(24*unitW+2*margin), vg.Length(rows*unitH+2*margin)
	img := vgimg.New(width, height)
	c := draw.New(img)
	c.FillPolygon(color.RGBA{242, 243, 243, 255}, box(0, 0, width, height))
	title := text.Style{Color: color.Black, Font: font.Font{Typeface: "Liberation", Variant: "Sans", Weight: 700, Size: 11},
		Handler: plot.DefaultTextHandler, YAlign: draw.YTop}
	line := title
	line.Font.Weight, line.Font.Size, line.Color = 400, 8.5, color.RGBA{60, 60, 60, 255}
	for _, wd := range d.Widgets {
		x0 := vg.Length(margin + wd.X*unitW + 3)
		top := height - vg.Length(margin+wd.Y*unitH+3)
		x1 := x0 + vg.Length(wd.Width*unitW-6)
		bottom := top - vg.Length(wd.Height*unitH-6)
		c.FillPolygon(color.White, box(x0, bottom, x1, top))
		c.StrokeLines(draw.LineStyle{Color: color.RGBA{200, 200, 200, 255}, Width: 0.75}, box(x0, bottom, x1, top))
		c.FillText(title, vg.Point{X: x0 + 8, Y: top - 8}, wd.Properties.Title)
		// The chart's frame, and one legend line per metric under it.
		labels := wd.labels()
		chartTop, chartBottom := top-30, bottom+vg.Length(14*len(labels)+12)
		c.StrokeLines(draw.LineStyle{Color: color.RGBA{170, 170, 170, 255}, Width: 0.75},
			[]vg.Point{{X: x0 + 10, Y: chartTop}, {X: x0 + 10, Y: chartBottom}, {X: x1 - 10, Y: chartBottom}})
		for i, l := range labels {
			y := chartBottom - vg.Length(8+14*i)
			c.StrokeLines(draw.LineStyle{Color: palette[i%len(palette)], Width: 2}, []vg.Point{{X: x0 + 10, Y: y - 5}, {X: x0 + 24, Y: y - 5}})
			c.FillText(line, vg.Point{X: x0 + 30, Y: y}, l)
		}
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func box(x0, y0, x1, y1 vg.Length) []vg.Point {
	return []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}, {X: x0, Y: y0}}
}
