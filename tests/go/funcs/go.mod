module funcs

go 1.19
