if address :domain :is "from" "corp.example" {
    redirect "assistant@example.com";
    stop;
}
