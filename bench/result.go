package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Units of a Row's values.
const (
	UnitMsgPerSec   = "msg/s" // messages per second, both directions counted
	UnitBytesPerSec = "B/s"   // payload bytes per second
	UnitSeconds     = "s"     // a latency or duration
	UnitBytes       = "B"     // a heap size
	UnitCount       = "count" // a plain number (goroutines)
)

// Row is one metric of one workload, with one value per system.
type Row struct {
	Workload       string             `json:"workload"`
	Metric         string             `json:"metric"`
	Unit           string             `json:"unit"`
	HigherIsBetter bool               `json:"higher_is_better"`
	Values         map[string]float64 `json:"values"`           // system -> value
	Errors         map[string]string  `json:"errors,omitempty"` // system -> why there is no value
	// Ratios are the ratio columns with a value, e.g. "cask/limit" ->
	// Values["cask"]/Values["limit"].
	Ratios map[string]float64 `json:"ratios,omitempty"`
}

// ratioColumns are the ratio columns, in table order: cask against each
// of the other columns, and cask with metrics against cask.
var ratioColumns = [][2]string{{ColCask, ColProtoactor}, {ColCask, ColLimit}, {ColCask, ColRaw}, {ColCaskMetrics, ColCask}}

func ratioName(pair [2]string) string { return pair[0] + "/" + pair[1] }

func (r *Row) set(system string, v float64) {
	if r.Values == nil {
		r.Values = map[string]float64{}
	}
	r.Values[system] = v
}

func (r *Row) fail(system string, err error) {
	if r.Errors == nil {
		r.Errors = map[string]string{}
	}
	r.Errors[system] = err.Error()
}

// Ratio is Values[a]/Values[b], or false when either is missing.
func (r *Row) Ratio(a, b string) (float64, bool) {
	va, ok1 := r.Values[a]
	vb, ok2 := r.Values[b]
	if !ok1 || !ok2 || vb == 0 {
		return 0, false
	}
	return va / vb, true
}

// fillRatios sets every row's Ratios from its Values.
func (rep *Report) fillRatios() {
	for i := range rep.Rows {
		r := &rep.Rows[i]
		r.Ratios = nil
		for _, pair := range ratioColumns {
			if x, ok := r.Ratio(pair[0], pair[1]); ok {
				if r.Ratios == nil {
					r.Ratios = map[string]float64{}
				}
				r.Ratios[ratioName(pair)] = x
			}
		}
	}
}

// Machine describes where the numbers were taken.
type Machine struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	CPUModel   string `json:"cpu_model"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute figures when the run
	// started. Anything well above zero means other work shared the CPUs.
	LoadAvg string `json:"loadavg,omitempty"`
}

// ThisMachine reads the machine description, CPU model from /proc/cpuinfo.
func ThisMachine() Machine {
	return Machine{
		GoVersion:  runtime.Version(),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		CPUModel:   cpuModel(),
		LoadAvg:    loadAvg(),
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Report is a whole run.
type Report struct {
	Machine Machine   `json:"machine"`
	Started time.Time `json:"started"`
	Elapsed float64   `json:"elapsed_seconds"`
	Scale   float64   `json:"scale"`
	Systems []string  `json:"systems"`
	Rows    []Row     `json:"rows"`
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report as an aligned text table.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "machine: %s, GOMAXPROCS=%d (NumCPU=%d), %s %s/%s\n",
		m.CPUModel, m.GOMAXPROCS, m.NumCPU, m.GoVersion, m.GOOS, m.GOARCH)
	fmt.Fprintf(w, "run: %s, scale -n=%g, %.1fs, load average at start %s\n\n",
		rep.Started.Format(time.RFC3339), rep.Scale, rep.Elapsed, m.LoadAvg)

	has := map[string]bool{}
	for _, s := range rep.Systems {
		has[s] = true
	}
	var cols []string
	for _, c := range columns {
		if has[c] {
			cols = append(cols, c)
		}
	}
	var ratios [][2]string
	for _, pair := range ratioColumns {
		if has[pair[0]] && has[pair[1]] {
			ratios = append(ratios, pair)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"workload", "metric", "better"}
	head = append(head, cols...)
	for _, pair := range ratios {
		head = append(head, ratioName(pair))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	var notes []string
	for _, r := range rep.Rows {
		better := "lower"
		if r.HigherIsBetter {
			better = "higher"
		}
		line := []string{r.Workload, r.Metric, better}
		for _, c := range cols {
			line = append(line, cell(&r, c))
			if e, ok := r.Errors[c]; ok {
				notes = append(notes, fmt.Sprintf("%s %s [%s]: %s", r.Workload, r.Metric, c, e))
			}
		}
		for _, pair := range ratios {
			line = append(line, ratioCell(&r, pair[0], pair[1]))
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	return nil
}

func cell(r *Row, sys string) string {
	if _, failed := r.Errors[sys]; failed {
		return "ERR"
	}
	v, ok := r.Values[sys]
	if !ok {
		return "-"
	}
	return FormatValue(v, r.Unit)
}

func ratioCell(r *Row, a, b string) string {
	x, ok := r.Ratio(a, b)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

// FormatValue renders v in unit for humans.
func FormatValue(v float64, unit string) string {
	switch unit {
	case UnitMsgPerSec:
		return fmt.Sprintf("%.0f k/s", v/1e3)
	case UnitBytesPerSec:
		return fmt.Sprintf("%.0f MiB/s", v/(1<<20))
	case UnitSeconds:
		switch {
		case v < 1e-3:
			return fmt.Sprintf("%.1f µs", v*1e6)
		case v < 1:
			return fmt.Sprintf("%.2f ms", v*1e3)
		default:
			return fmt.Sprintf("%.2f s", v)
		}
	case UnitBytes:
		return fmt.Sprintf("%.1f KiB", v/1024)
	case UnitCount:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}
