package migrations

// ParseForTest exposes parse to the external test package.
var ParseForTest = parse
