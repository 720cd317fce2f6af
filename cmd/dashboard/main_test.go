package main

import (
	"bytes"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// TestRender: each widget is drawn where the body places it, on the grid's
// scale, and the legend reads each metric.
func TestRender(t *testing.T) {
	body := `{"widgets":[
	{"type":"metric","x":0,"y":0,"width":12,"height":6,"properties":{"title":"A","stat":"Sum","metrics":[["NS","Records","FunctionName","f"],["NS","Failed","FunctionName","f",{"stat":"Maximum"}]]}},
	{"type":"metric","x":12,"y":6,"width":12,"height":6,"properties":{"title":"B","metrics":[[{"expression":"m1/PERIOD(m1)","label":"records/s","id":"e1"}],["NS","Records","FunctionName","f",{"id":"m1","visible":false}]]}}]}`
	d, err := parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.Widgets[0].labels(), "|") + "|" + strings.Join(d.Widgets[1].labels(), "|"); got != "Records (Sum)|Failed (Maximum)|records/s" {
		t.Errorf("labels %q", got)
	}
	var buf bytes.Buffer
	if err := render(d, &buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// vgimg draws 96 dots per 72 points.
	px := func(pt int) int { return pt * 96 / 72 }
	b := img.Bounds()
	if b.Dx() != px(24*unitW+2*margin) || b.Dy() != px(12*unitH+2*margin) {
		t.Fatalf("image %v, want %d × %d", b, px(24*unitW+2*margin), px(12*unitH+2*margin))
	}
	white := func(x, y int) bool { return color.GrayModel.Convert(img.At(px(x), px(y))).(color.Gray).Y == 255 }
	// Inside widget A (top left) and B (bottom right), away from text and lines;
	// the background where neither is.
	if !white(margin+6*unitW, margin+2*unitH) || !white(margin+18*unitW, margin+8*unitH) || white(margin+18*unitW, margin+2*unitH) {
		t.Errorf("widgets not where the body places them")
	}
}

func TestDashboardBodyMissing(t *testing.T) {
	if _, err := dashboardBody([]byte(`{"Resources":{}}`)); err == nil || !strings.Contains(err.Error(), "no RelayDashboard") {
		t.Errorf("err %v, want one saying there is no dashboard", err)
	}
}
