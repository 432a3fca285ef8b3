module wide

go 1.21
