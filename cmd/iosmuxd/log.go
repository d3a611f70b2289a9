package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// logFlags are the logging flags every command takes.
type logFlags struct {
	json  *bool
	level *string
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	return &logFlags{
		json:  fs.Bool("log-json", false, "write logs as JSON lines (default: text)"),
		level: fs.String("log-level", "info", "log `level`: debug, info, warn, error"),
	}
}

// validate refuses a level slog does not know ("verbose" is not silently info).
func (l *logFlags) validate() error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*l.level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *l.level)
	}
	return nil
}

// logger builds the slog.Logger the flags ask for, writing to w; validate first.
func (l *logFlags) logger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(*l.level))
	opts := &slog.HandlerOptions{Level: lv}
	if *l.json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
