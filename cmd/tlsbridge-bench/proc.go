package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// USER_HZ is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procStat is what the tool reads from /proc/PID/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime, all threads, live and exited
}

// parseStat parses the contents of /proc/PID/stat. The command name (field
// 2) may contain spaces and parentheses, so fields are counted from the
// last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return procStat{}, errors.New("no command name")
	}
	f := strings.Fields(s[i+2:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("%d fields, want at least 15", len(f)+2)
	}
	ppid, err0 := strconv.Atoi(f[1])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return procStat{}, err
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// processTree returns the given PIDs and all their live descendants.
func processTree(roots []int) ([]int, error) {
	parent := map[int]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			parent[pid] = st.ppid
		}
	}
	in := map[int]bool{}
	for _, r := range roots {
		if _, ok := parent[r]; !ok {
			return nil, fmt.Errorf("-pid %d: no such process", r)
		}
		in[r] = true
	}
	// Walk up from every process; depth is small, so this is cheap.
	var tree []int
	for pid := range parent {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if in[p] {
				tree = append(tree, pid)
				break
			}
		}
	}
	return tree, nil
}

// cpuSnapshot is the CPU time of each process of a tree at one moment.
type cpuSnapshot map[int]time.Duration

func takeCPU(roots []int) (cpuSnapshot, error) {
	tree, err := processTree(roots)
	if err != nil {
		return nil, err
	}
	s := cpuSnapshot{}
	for _, pid := range tree {
		if st, err := readStat(pid); err == nil {
			s[pid] = st.cpu
		}
	}
	return s, nil
}

// cpuSince is the CPU time the tree used between two snapshots. A process
// that started in between counts in full; one that exited in between is
// lost (squid's helpers live as long as squid, tlsbridge has none).
func cpuSince(before, after cpuSnapshot) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c - before[pid]
	}
	return d
}

// parseRSS finds VmRSS in the contents of /proc/PID/status.
func parseRSS(s string) (int64, error) {
	for line := range strings.SplitSeq(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

// treeRSS is the summed resident set size of the PIDs and their children.
func treeRSS(roots []int) (int64, error) {
	tree, err := processTree(roots)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, pid := range tree {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // exited meanwhile
		}
		rss, err := parseRSS(string(b))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
		sum += rss
	}
	return sum, nil
}
