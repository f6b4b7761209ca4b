package main

// reopenLogs opens the access log file again on SIGUSR1, as nginx does
// for logrotate: the rotated file gets every line logged before the
// signal, the new one every line after. A path that cannot be opened now
// is logged and the old file kept, so that no line is lost.
func (a *app) reopenLogs() {
	g := a.current.Load()
	if g.accessLog == nil {
		return // access_log: off
	}
	if err := g.accessLog.Reopen(); err != nil {
		a.logger.Error("access log not reopened, still writing to the old file", "path", g.cfg.AccessLog.Path, "error", err)
		return
	}
	if g.cfg.AccessLog.Path != "" {
		a.logger.Info("access log reopened", "path", g.cfg.AccessLog.Path)
	}
}
