package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svgElement is one element of a parsed SVG: its name, attributes and
// character data.
type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parseSVG decodes doc as XML, failing the test unless it is well formed
// with an <svg> root, and returns its elements in document order.
func parseSVG(t *testing.T, doc []byte) []*svgElement {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var all, open []*svgElement
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if len(all) == 0 && (e.name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", tok.Name)
			}
			all = append(all, e)
			open = append(open, e)
		case xml.EndElement:
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) > 0 {
				open[len(open)-1].text += string(tok)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("empty SVG")
	}
	return all
}

func withClass(els []*svgElement, class string) []*svgElement {
	var out []*svgElement
	for _, e := range els {
		if e.attrs["class"] == class {
			out = append(out, e)
		}
	}
	return out
}

func TestPlotSVG(t *testing.T) {
	ms := time.Millisecond
	p := srttPlot{
		Title:     `SRTT <of> "laptop" & co`,
		Threshold: 200 * ms,
		Series: []plotSeries{
			{Name: "laptop ↔ hub", Points: []plotPoint{{0, ms}, {250 * ms, ms}, {500 * ms, 310 * ms}, {750 * ms, 420 * ms}, {time.Second, ms}}},
			{Name: "laptop ↔ <worker>", Points: []plotPoint{{0, ms}, {250 * ms, 2 * ms}}},
		},
		Markers: []plotMarker{{400 * ms, "fault: +300ms on laptop ↔ hub"}, {900 * ms, "watchdog migrates laptop ↔ hub (412µs)"}},
	}
	var buf bytes.Buffer
	if err := p.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	els := parseSVG(t, buf.Bytes())

	if titles := withClass(els, "title"); len(titles) != 1 || titles[0].text != p.Title {
		t.Errorf("title elements %v, want one reading %q", titles, p.Title)
	}
	markers, labels := withClass(els, "marker"), withClass(els, "marker-label")
	if len(markers) != 2 || len(labels) != 2 {
		t.Fatalf("%d markers and %d labels, want 2 of each", len(markers), len(labels))
	}
	for i, m := range p.Markers {
		if labels[i].text != m.Label {
			t.Errorf("marker %d label %q, want %q", i, labels[i].text, m.Label)
		}
		if markers[i].attrs["x1"] != markers[i].attrs["x2"] {
			t.Errorf("marker %d is not vertical: %v", i, markers[i].attrs)
		}
	}
	x0, _ := strconv.ParseFloat(markers[0].attrs["x1"], 64)
	x1, _ := strconv.ParseFloat(markers[1].attrs["x1"], 64)
	if !(x0 > 0 && x0 < x1) {
		t.Errorf("markers at x %s and %s, want the first left of the second", markers[0].attrs["x1"], markers[1].attrs["x1"])
	}
	series := withClass(els, "series")
	if len(series) != 2 {
		t.Fatalf("%d series lines, want 2", len(series))
	}
	for i, s := range p.Series {
		if series[i].attrs["data-name"] != s.Name || len(strings.Fields(series[i].attrs["points"])) != len(s.Points) {
			t.Errorf("series %d: name %q with points %q; want %q with %d points", i, series[i].attrs["data-name"],
				series[i].attrs["points"], s.Name, len(s.Points))
		}
	}
	if len(withClass(els, "threshold")) != 1 || !strings.Contains(withClass(els, "threshold-label")[0].text, "200ms") {
		t.Error("no threshold line labelled with 200ms")
	}
	for _, e := range els {
		if e.name == "script" || e.attrs["href"] != "" {
			t.Errorf("the SVG must stand alone, found <%s %v>", e.name, e.attrs)
		}
	}
}

// An empty plot (no samples yet) is still a well-formed SVG.
func TestPlotSVGEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := (srttPlot{Title: "nothing"}).WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	if els := parseSVG(t, buf.Bytes()); len(withClass(els, "series")) != 0 {
		t.Error("series drawn from no data")
	}
}

func TestPlotAxisLabels(t *testing.T) {
	for _, tc := range []struct {
		v, step float64
		want    string
	}{
		{0, 2.5, "0 ms"}, {7.5, 2.5, "7.5 ms"}, {100, 50, "100 ms"}, {0.25, 0.25, "0.25 ms"}, {0.4, 0.2, "0.4 ms"},
	} {
		if got := msLabel(tc.v, tc.step); got != tc.want {
			t.Errorf("msLabel(%v, %v) = %q, want %q", tc.v, tc.step, got, tc.want)
		}
	}
}
