// Entry point: runs the command and maps every failure to the documented exit codes.
MPQ.runAndExit()
