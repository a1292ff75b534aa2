package main

// asAdmin is how a person runs command with the rights the machine's ROOT
// store needs.
func asAdmin(command string) string {
	return command + " in an elevated prompt (Run as administrator)"
}
