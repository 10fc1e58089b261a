package main

// Version is what GET / reports.
const Version = "v1"
