package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// srttPlot is the demo's picture: SRTT over time, one line per link,
// with vertical markers for events (the fault, the migration) and a
// horizontal line for the watchdog's threshold. Times are offsets from
// the demo's start.
type srttPlot struct {
	Title     string
	Series    []plotSeries
	Markers   []plotMarker
	Threshold time.Duration // 0: none
	End       time.Duration // right edge; 0: the last point or marker
}

type plotSeries struct {
	Name   string
	Points []plotPoint
}

type plotPoint struct {
	At   time.Duration
	SRTT time.Duration
}

type plotMarker struct {
	At    time.Duration
	Label string
}

// The drawing's geometry, in SVG user units.
const (
	plotWidth  = 900
	plotHeight = 440
	plotLeft   = 70
	plotRight  = 20
	plotTop    = 50
	plotBottom = 90
)

var plotColors = []string{"#2b6cb0", "#2f855a", "#b7791f", "#6b46c1", "#c05621"}

// WriteSVG writes the plot as a standalone SVG document (no scripts, no
// external references).
func (p srttPlot) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	end := p.End
	maxV := p.Threshold
	for _, s := range p.Series {
		for _, pt := range s.Points {
			end = max(end, pt.At)
			maxV = max(maxV, pt.SRTT)
		}
	}
	for _, m := range p.Markers {
		end = max(end, m.At)
	}
	if end <= 0 {
		end = time.Second
	}
	maxMS := math.Max(ms(maxV)*1.1, 1)
	step := niceStep(maxMS)
	top := math.Ceil(maxMS/step) * step
	innerW, innerH := float64(plotWidth-plotLeft-plotRight), float64(plotHeight-plotTop-plotBottom)
	x := func(d time.Duration) float64 { return plotLeft + d.Seconds()/end.Seconds()*innerW }
	y := func(v float64) float64 { return plotTop + (1-v/top)*innerH }

	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, plotHeight, plotWidth, plotHeight)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", plotWidth, plotHeight)
	fmt.Fprintf(bw, `<text class="title" x="%d" y="28" font-size="16" font-weight="bold" fill="#1d2330">%s</text>`+"\n", plotLeft, esc(p.Title))

	// Axes and grid.
	fmt.Fprintf(bw, `<g class="grid" stroke="#e2e6ec">`+"\n")
	for v := 0.0; v <= top+1e-9; v += step {
		fmt.Fprintf(bw, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`+"\n", plotLeft, plotWidth-plotRight, y(v), y(v))
	}
	fmt.Fprintf(bw, "</g>\n")
	fmt.Fprintf(bw, `<g class="axis" fill="#6b7384">`+"\n")
	for v := 0.0; v <= top+1e-9; v += step {
		fmt.Fprintf(bw, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y(v)+4, esc(msLabel(v, step)))
	}
	tstep := niceStep(end.Seconds())
	for t := 0.0; t <= end.Seconds()+1e-9; t += tstep {
		fmt.Fprintf(bw, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`+"\n", x(time.Duration(t*float64(time.Second))), plotHeight-plotBottom+18, t)
	}
	fmt.Fprintf(bw, `<text x="%d" y="%d" text-anchor="middle">time since start</text>`+"\n", plotLeft+int(innerW)/2, plotHeight-plotBottom+36)
	fmt.Fprintf(bw, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">smoothed RTT</text>`+"\n",
		plotTop+int(innerH)/2, plotTop+int(innerH)/2)
	fmt.Fprintf(bw, "</g>\n")
	fmt.Fprintf(bw, `<line class="frame" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#6b7384"/>`+"\n", plotLeft, plotWidth-plotRight, y(0), y(0))

	if p.Threshold > 0 {
		ty := y(ms(p.Threshold))
		fmt.Fprintf(bw, `<line class="threshold" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c53030" stroke-dasharray="6 4"/>`+"\n",
			plotLeft, plotWidth-plotRight, ty, ty)
		fmt.Fprintf(bw, `<text class="threshold-label" x="%d" y="%.1f" text-anchor="end" fill="#c53030">watchdog threshold %v</text>`+"\n",
			plotWidth-plotRight-4, ty-5, p.Threshold)
	}

	// Markers. Each label goes right of its line (left of it near the
	// right edge), on the first row where it overlaps no other label.
	var rowEnds []float64 // right end of the last label on each row
	for _, m := range p.Markers {
		mx := x(m.At)
		fmt.Fprintf(bw, `<line class="marker" x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#d97706" stroke-width="1.5" stroke-dasharray="4 3"/>`+"\n",
			mx, mx, plotTop-6, y(0))
		width := labelWidth(m.Label)
		left, anchor, tx := mx+4, "start", mx+4
		if left+width > plotWidth-plotRight {
			left, anchor, tx = mx-4-width, "end", mx-4
		}
		row := 0
		for row < len(rowEnds) && rowEnds[row] > left-8 {
			row++
		}
		if row == len(rowEnds) {
			rowEnds = append(rowEnds, 0)
		}
		rowEnds[row] = left + width
		fmt.Fprintf(bw, `<text class="marker-label" x="%.1f" y="%d" text-anchor="%s" fill="#9c4a00" paint-order="stroke" stroke="#ffffff" stroke-width="4" stroke-linejoin="round">%s</text>`+"\n",
			tx, plotTop+8+16*row, anchor, esc(m.Label))
	}

	// One line per series; a sample on a series' own break (a failed
	// sample) is simply absent.
	for i, s := range p.Series {
		color := plotColors[i%len(plotColors)]
		var pts strings.Builder
		for _, pt := range s.Points {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(pt.At), y(ms(pt.SRTT)))
		}
		fmt.Fprintf(bw, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" points="%s"/>`+"\n",
			esc(s.Name), color, strings.TrimSpace(pts.String()))
		for _, pt := range s.Points {
			fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>`+"\n", x(pt.At), y(ms(pt.SRTT)), color)
		}
		lx := plotLeft + 220*i
		ly := plotHeight - 22
		fmt.Fprintf(bw, `<g class="legend"><line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d" fill="#1d2330">%s</text></g>`+"\n",
			lx, lx+24, ly-4, ly-4, color, lx+30, ly, esc(s.Name))
	}
	fmt.Fprintf(bw, "</svg>\n")
	return bw.Flush()
}

// labelWidth estimates the width of a 12-pixel sans-serif label.
func labelWidth(s string) float64 { return 6.6 * float64(utf8.RuneCountInString(s)) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// niceStep is a round step that cuts max into about five parts.
func niceStep(max float64) float64 {
	raw := max / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// msLabel writes v, a multiple of step, with as many decimals as step
// needs (2.5 ms steps: 7.5 ms, not 8 ms).
func msLabel(v, step float64) string {
	if v == 0 {
		return "0 ms"
	}
	d := 0
	for scaled := step; d < 6 && math.Abs(scaled-math.Round(scaled)) > 1e-9; d++ {
		scaled *= 10
	}
	return fmt.Sprintf("%.*f ms", d, v)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
