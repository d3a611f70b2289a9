package discovery

import "time"

// RateLogInterval is how often one kind of message about hostile input may be logged (the rest
// are counted and summarised once the interval ends: internal/lograte).
const RateLogInterval = 10 * time.Second
