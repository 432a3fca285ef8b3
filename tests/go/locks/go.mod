module locks

go 1.19
