require ["include"];
include :global "site-policy";
