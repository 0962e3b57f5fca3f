"""Report notebooks rendered to HTML, PDF, Excel and ZIP; the archive, schedules and e-mail delivery."""
