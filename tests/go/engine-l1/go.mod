module github.com/dagger/dagger

go 1.21
