package main

// Broken selects a failure mode for demos and tests:
//
//	""      healthy
//	"boot"  never healthy: /up answers 503
//	"slow"  /up answers 503 for the first 3 seconds
//	"smoke" /up is fine but / answers 500
//	"after" healthy at first; / answers 500 from one second after it was first requested
const Broken = ""
