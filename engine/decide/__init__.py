"""What happens to one firing: holdout, channels, skip reasons, quiet hours, the daily cap and
the Message-ID. Pure: takes `now`, never reads a clock or a database."""
