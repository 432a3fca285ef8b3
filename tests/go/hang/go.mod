module hang

go 1.19
