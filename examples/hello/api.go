package main

// greetingField is the JSON field of GET /api/greeting. Clients of older
// versions read it: renaming it is a breaking change, which the
// backwards-compatibility gate (compat/ run from the oldest compatible
// version) catches before promotion.
const greetingField = "greeting"
