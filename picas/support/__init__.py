"""Small helpers with no picas dependencies: process groups, durations, URL credentials, private files."""
