package main

import (
	"flag"
	"io"
	"log/slog"
	"os"
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

// logger builds the slog.Logger the flags ask for, writing to w.
func (l *logFlags) logger(w io.Writer) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*l.level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if *l.json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	if f, ok := w.(*os.File); ok && f == os.Stderr {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
